"""Discriminator features and the feature-store format."""
from .extract import ExtractOptions, extract_features, load_probe_splits, random_discriminator
from .pooling import layer_dims, pooled_features, select_layers
from .shards import ShardedMatrix
from .store import FeatureStore, MatrixWriter, load_store, save_store, select_store_layers

__all__ = ["ExtractOptions", "extract_features", "load_probe_splits", "random_discriminator", "layer_dims",
           "pooled_features", "select_layers", "FeatureStore", "MatrixWriter", "load_store", "save_store",
           "select_store_layers", "ShardedMatrix"]
