"""The built-in demo model: its synthetic corpus (corpus.py), training (train.py) and the
measurements of its circuits (report.py). Needs torch and tokenizers, never transformers."""
