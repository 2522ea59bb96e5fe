"""Per-entity multimodal features: encoders for text and images, importers for published files, one parquet format.

The package imports none of its modules: a stage that only reads the feature bundle (`dhns.features.bundle`)
then depends on neither the encoders nor the importers, so DVC does not rerun training when they change.
Encoders import transformers/open_clip lazily for the same reason.
"""
