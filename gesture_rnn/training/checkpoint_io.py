"""Checkpoints written to a temporary file in their folder and renamed into place.

Lightning's own local save streams the bytes into a temporary file elsewhere (fsspec) and then
moves it, a copy across file systems: a full disk or a SIGKILL during that copy leaves a
truncated ``.ckpt`` that a later ``ckpt_path=`` would trust. Here the final name appears only
once the whole file is on disk; a failed write leaves nothing and says where and why.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from gesture_rnn.utils.atomic import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None or "://" in str(path):  # remote storage: Lightning's way
            return super().save_checkpoint(checkpoint, path, storage_options)
        target = Path(path)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        with atomic_write(target, "wb", "checkpoint") as handle:  # a StorageError names it
            handle.write(buffer.getbuffer())
            handle.flush()
            os.fsync(handle.fileno())
