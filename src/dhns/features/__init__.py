"""Per-entity multimodal features: encoders for text and images, importers for published files, one parquet format.

Encoders import transformers/open_clip lazily, so importing this package stays cheap.
"""

from dhns.features.image import encode_images, find_entity_images, safe_entity_filename
from dhns.features.importing import find_import_files, load_feature_file
from dhns.features.store import FeatureTable, read_feature_table, write_feature_table
from dhns.features.text import DEFAULT_TEXT_ENCODER, encode_texts, resolve_text_encoder

__all__ = [
    "DEFAULT_TEXT_ENCODER",
    "FeatureTable",
    "encode_images",
    "encode_texts",
    "find_entity_images",
    "find_import_files",
    "load_feature_file",
    "read_feature_table",
    "resolve_text_encoder",
    "safe_entity_filename",
    "write_feature_table",
]
