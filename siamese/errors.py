"""Exceptions a user can cause. The CLI turns each into one line and a non-zero exit code."""


class SiameseError(Exception):
    """Base class for user-facing errors (bad data, bad options, bad checkpoints)."""


class DataError(SiameseError):
    """A dataset path, layout or content that siamese cannot use."""


class ImageError(DataError):
    """An image file that cannot be decoded (corrupt, truncated, empty, not an image)."""


class ConfigError(SiameseError):
    """A nonsensical or unknown option value."""


class CheckpointError(SiameseError):
    """A model directory or checkpoint that is missing, corrupt or incompatible."""
