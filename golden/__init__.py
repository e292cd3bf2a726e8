"""The PyTorch golden reference: nested quantizers, training, the integer-only path and the export."""
