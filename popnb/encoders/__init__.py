"""popnb.encoders: frozen encoders by name (weights from installed packages, offline) and the feature store.

    from popnb.encoders import ENCODERS, encode
    titles = encode("e5-small", data).values            # float32 [N, 384]
    covers = encode("tf_efficientnet_lite0", data).values  # float32 [N, 1280], covers at 256x144
    ocr = encode("cover-ocr", data).values              # DataFrame: text, n_text_boxes, text_area, ...

`load_efficientnet_lite(name)` gives the same weights as a timm model to fine-tune.
"""
from popnb.encoders.efficientnet import load_efficientnet_lite
from popnb.encoders.interpretable import cover_features
from popnb.encoders.packages import EncoderUnavailableError
from popnb.encoders.registry import ENCODERS, EncoderSpec, encoder_table, get_encoder, get_spec
from popnb.encoders.store import Features, encode

__all__ = ["ENCODERS", "EncoderSpec", "EncoderUnavailableError", "Features", "cover_features", "encode",
           "encoder_table", "get_encoder", "get_spec", "load_efficientnet_lite"]
