"""The trainer's model folder: config.json of schema ``facelab.model`` holding TrainOptions, and the
checkpoint files of ``facelab.core.model_folder`` (weights ``ae.*``, ``code_d.*``, ``gan_d.*``)."""

from __future__ import annotations

from facelab.core.model_folder import ModelFolder
from facelab.train.options import TrainOptions

MODEL_SCHEMA = "facelab.model"
MODEL_FOLDER: ModelFolder[TrainOptions] = ModelFolder(MODEL_SCHEMA, TrainOptions, "model", "a model",
                                                      hint="use a new --model-dir for another architecture")

# the names the CLI and workflows use
read_config = MODEL_FOLDER.read_config
write_config = MODEL_FOLDER.write_config
merge_options = MODEL_FOLDER.resolve
