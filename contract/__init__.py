"""The bottom layer: what every other layer agrees on, importable with nothing but numpy installed.

`errors` (NestmacError, the root of every error a CLI prints as one line), `numerics` (the contract's
version, ranges, schemes, modes and its error), `config` (the engine's generation parameters), `timing`
(pipeline latencies shared by the HDL and the model), `versions` (the hardware interface's format
versions) and `cli` (one-line errors, exit status 2, atomic outputs).
"""
