class CheckpointError(Exception):
    """A model folder that cannot be loaded; the message names the problem."""
