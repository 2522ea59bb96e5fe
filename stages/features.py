"""Stage features: per-entity text and image vectors (extracted, or imported from feature files)."""

import logging
from pathlib import Path

from dhns.config import load_params
from dhns.data import load_prepared
from dhns.features.bundle import write_feature_bundle
from dhns.features.image import encode_images, find_entity_images
from dhns.features.importing import find_import_files, load_feature_file
from dhns.features.store import FeatureTable
from dhns.features.text import encode_text_features
from dhns.host import resolve_device
from dhns.pipeline.paths import FEATURES_DIR, PREPARED_DIR, raw_dir
from dhns.stage import run_stage

log = logging.getLogger("features")


def main() -> None:
    params = load_params()
    config, dataset = params.features, params.data.dataset
    device = resolve_device(params.device)
    graph = load_prepared(PREPARED_DIR)
    imported = find_import_files(Path(config.import_dir), dataset) if config.import_dir else {}
    tables: dict[str, FeatureTable] = {}
    absent: dict[str, str] = {}

    for modality, path in imported.items():
        log.info("%s: importing %s", modality, path)
        tables[modality] = load_feature_file(path, graph.num_entities)

    if "text" not in tables:
        log.info("text: encoding %d entity texts with %s", graph.num_entities, config.text_encoder)
        tables["text"] = encode_text_features(list(graph.entity_texts), config.text_encoder,
                                              batch_size=config.text_batch_size, max_length=config.text_max_length,
                                              device=device)

    if "image" not in tables:
        images_dir = raw_dir(dataset) / "images"
        images = find_entity_images(images_dir, list(graph.entity_names))
        if images:
            log.info("image: encoding images of %d entities with %s %s", len(images), config.image_backend, config.image_model)
            table, skipped = encode_images(images, graph.num_entities, backend=config.image_backend,
                                           model=config.image_model, pretrained=config.image_pretrained or None,
                                           batch_size=config.image_batch_size, device=device)
            if skipped:
                log.warning("image: %d unreadable image files were skipped", skipped)
            tables["image"] = table
        else:
            absent["image"] = f"no images under {images_dir} and no imported visual features"
            log.warning("image modality ABSENT: %s; training uses structure and text only", absent["image"])

    write_feature_bundle(FEATURES_DIR, tables, absent)
    for name, table in tables.items():
        log.info("%s: %d x %d, %d entities present", name, table.num_entities, table.dim, int(table.present.sum()))


if __name__ == "__main__":
    run_stage(main)
