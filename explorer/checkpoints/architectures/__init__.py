"""The architecture registry: model_type -> the module that knows that family."""

from . import bert, gpt2, llama, neox

FAMILIES = {t: mod for mod in (gpt2, llama, neox, bert) for t in mod.MODEL_TYPES}
SUPPORTED = sorted(FAMILIES)

# architectures names in config.json, for folders whose model_type is missing
ARCHITECTURES = {
    "GPT2LMHeadModel": "gpt2",
    "GPT2Model": "gpt2",
    "LlamaForCausalLM": "llama",
    "LlamaModel": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "GPTNeoXForCausalLM": "gpt_neox",
    "BertModel": "bert",
    "BertForMaskedLM": "bert",
}


def defaults(model_type: str) -> dict:
    d = FAMILIES[model_type].DEFAULTS
    return d.get(model_type, d) if isinstance(d.get(model_type), dict) else d
