"""The ``cnn:`` section: which images, how many, which network, which weight prior."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from jaxpm.section import Int, Prior, Section, absolute_path, existing_file, fail


def _default_weight_prior() -> Prior:
    # model_construct: no validation, so defining the default does not import PyMC
    return Prior.model_construct(dist="Normal", mu=0, sigma=1)


class CnnSection(Section):
    """``cnn:``: a flax CNN classifying digit images, as in the PyMC Labs post."""

    source: Literal["digits", "mnist", "npz"] = "digits"
    n: Int = Field(1000, gt=0)
    holdout: Int = Field(500, ge=0)  # images after the first n, for held-out accuracy
    data_dir: str | None = None  # tensorflow-datasets cache for source: mnist
    path: str | None = None  # the .npz file for source: npz
    split: str = "train"
    layers: list[Any] | None = None  # None: the post's architecture
    weight_prior: Prior = Field(default_factory=_default_weight_prior)
    dtype: Literal["float32", "float64"] = "float64"
    inference_dtype: Literal["float32", "float64"] | None = None  # sampling and fits; None: dtype
    output: str = "logits"
    labels: str = "labels"

    @field_validator("data_dir")
    @classmethod
    def _data_dir(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else str(absolute_path(value, info))

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else existing_file(value, info)

    @model_validator(mode="after")
    def _npz_needs_path(self) -> CnnSection:
        if self.source == "npz" and self.path is None:
            fail("required key 'path' is missing (source: npz reads images from a .npz file)", "path")
        return self


__all__ = ["CnnSection"]
