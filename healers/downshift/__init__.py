"""The model-downshift healer: move an AI app down an approved model ladder when it burns its budget or drowns
in 429s, and bring it back safely (hysteresis, dwell, switch caps, period boundaries, never fighting an operator).

`core.decide` is the pure decision; `ladder`, `periods` and `budget` are its pure helpers.
"""
