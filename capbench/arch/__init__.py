"""What a model is, from its config and its tensors: pure facts below both the runners and the metrics.

``structure`` (layers, experts, parameters, KV elements) built per family by ``families``; ``quantization`` and
``dtypes`` (the stored and compute dtype of each weight group, byte widths); ``checkpoint`` (tensor names ->
weight groups); ``context`` (the context length). Depends only on ``capbench.errors``; never on torch.
"""
