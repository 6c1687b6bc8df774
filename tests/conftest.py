"""Shared test setup: one torch thread (the machine is small and shared; one thread is also
what makes float reductions order-stable between runs)."""

from __future__ import annotations

import torch

torch.set_num_threads(1)
