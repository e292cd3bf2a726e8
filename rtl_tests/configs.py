"""Engine configurations of the cocotb regression. Tests that can share one share it: each distinct
configuration costs a Verilator build of a minute or more."""

from contract.config import EngineConfig

CONFIGS = {
    "2x2b4": EngineConfig(rows=2, cols=2, base_bits=4, act_bits=4, acc_bits=16, max_m=8, max_k=64, max_n=64),
    "4x4b8": EngineConfig(rows=4, cols=4, base_bits=8, act_bits=8, acc_bits=32, max_m=16, max_k=128, max_n=128),
    "3x5b8": EngineConfig(rows=3, cols=5, base_bits=8, act_bits=6, acc_bits=28, max_m=16, max_k=128, max_n=128),
    # also runs the digits network (K <= 288, N <= 32, M <= 64 per image)
    "16x16b8": EngineConfig(rows=16, cols=16, base_bits=8, act_bits=8, acc_bits=32, max_m=64, max_k=512, max_n=512),
}
