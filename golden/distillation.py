"""Which pass teaches a lower precision in nested training, and the softened KL it is taught with.

In every nested step the k = B pass learns from the labels; each lower precision learns from a teacher's
detached logits (knowledge distillation: the lower-precision forwards of the one stored code imitate the
full-precision forward of the same step, as Any-Precision networks do), or from the labels too:

- `top`: every lower k from the k = B pass (Any-Precision's teacher; the default).
- `previous`: each lower k from the next higher pass trained in the step (a chain B -> B-1 -> ... -> 1).
- `none`: every precision on the labels (cross-entropy), no distillation: the ablation.

The teacher's and student's logits are softened by a temperature T, and the KL is scaled by T^2 so that its
gradient keeps the magnitude of T = 1 whatever T is (Hinton et al., 2015).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from contract.cli import InputError

TEACHERS = ("top", "previous", "none")
DEFAULT_TEACHER = "top"
DEFAULT_TEMPERATURE = 1.0
#: The temperatures the flag accepts: below 0.1 the softmax is a hard argmax, above 100 it is uniform.
TEMPERATURE_RANGE = (0.1, 100.0)


@dataclass(frozen=True)
class Distillation:
    """How the lower precisions of a nested step are trained (module docstring)."""

    teacher: str = DEFAULT_TEACHER
    temperature: float = DEFAULT_TEMPERATURE

    def __post_init__(self):
        if self.teacher not in TEACHERS:
            raise InputError(f"unknown teacher {self.teacher!r}; expected one of {', '.join(TEACHERS)}")
        lo, hi = TEMPERATURE_RANGE
        if not lo <= self.temperature <= hi:
            raise InputError(f"temperature must be a number in [{lo:g}, {hi:g}], got {self.temperature!r}")

    def teacher_of(self, top: torch.Tensor, previous: torch.Tensor) -> torch.Tensor | None:
        """The detached logits a lower pass learns from, given the step's k = B and last passes; None: labels."""
        return {"top": top, "previous": previous, "none": None}[self.teacher]


#: The recipe's distillation (golden.train's defaults).
DEFAULT_DISTILLATION = Distillation()


def soft_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch. `teacher` is expected
    detached: the student moves toward it, never the reverse."""
    return temperature**2 * F.kl_div(
        F.log_softmax(student / temperature, dim=1),
        F.log_softmax(teacher / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )
