"""Retrieval: features of a split and of a folder, feature folders, the gallery index and its file.

    split_features   features of a dataset split, the missing-modality protocol (run_features)
    folder_features  features of many triples into a resumable feature folder (train.extract)
    feature_store    a feature folder: shards, manifest, checksums, verified on read
    index            GalleryIndex on faiss: exact or IVF, junk filtering (needs the index extra)
    index_file       the index's one-file, checksummed container
    milvus_index     MilvusGallery: the same interface on a Milvus collection (Milvus Lite or a server)
    milvus_lite_file  a Milvus Lite file's path checked before it is opened; Milvus Lite's logs kept quiet
    gallery_open     one opener for a saved gallery: an index file or a milvus: URI
    ray_extraction   the feature folder of many triples on Ray Data (an actor pool; scale extra)
    ray_cluster      what a Ray cluster can hold and whether an address answers as Ray, checked first
"""
from __future__ import annotations

from ..utils.lazy import lazy_exports

_EXPORTS = {  # public name -> module (imported on first use: optional packages stay optional)
    "DatasetFeatures": "split_features",
    "drop_modalities": "split_features",
    "extract_dataset_features": "split_features",
    "run_features": "split_features",
    "encode_records": "folder_features",
    "extract_to_folder": "folder_features",
    "ExtractionSummary": "folder_features",
    "FeatureStoreError": "feature_store",
    "FeatureSet": "feature_store",
    "FeatureWriter": "feature_store",
    "read_features": "feature_store",
    "is_feature_folder": "feature_store",
    "GalleryIndex": "index",
    "IvfPqConfig": "index",
    "JunkFilter": "index",
    "SearchResult": "index",
    "IndexFileError": "index_file",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
