"""Registry of the tiny autoencoders: name -> architecture, weight files, public address."""

from __future__ import annotations

from dataclasses import dataclass

UPSTREAM_URL = "https://github.com/madebyollin/taesd/raw/main"

# YuNet (Apache-2.0), the face detector that steers the budget toward faces and bodies.
FACE_DETECTOR = "yunet_n_dynamic.onnx"
FACE_DETECTOR_URL = ("https://raw.githubusercontent.com/ShiqiYu/libfacedetection.train/"
                     "master/onnx/yunet_n_dynamic.onnx")


@dataclass(frozen=True)
class ModelSpec:
    """One tiny autoencoder that stands in for an editor's VAE."""

    name: str
    stands_in_for: str
    latent_channels: int
    use_pool: bool = False

    def file_stem(self, part: str) -> str:
        """`taesd_encoder`, `taef2_decoder`, ..."""
        return f"{self.name}_{part}"


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("taesd", "Stable Diffusion 1.x/2.x VAE", 4),
        ModelSpec("taesdxl", "SDXL VAE", 4),
        ModelSpec("taef1", "FLUX.1 VAE", 16),
        ModelSpec("taef2", "FLUX.2 VAE", 32, use_pool=True),
    )
}

PARTS = ("encoder", "decoder")

# sha256 of every weight file whose bytes we know. Files with other bytes (a re-export,
# the diffusers layout) are accepted only if they load strictly into the architecture.
KNOWN_SHA256: dict[str, str] = {
    "taef1_decoder.safetensors": "bb41500b646d5b8b592b7f3ca5d20d888c3075e209d178d99af609cd7e02a1d4",
    "taef1_encoder.safetensors": "19f5a854ce575fd0a1c0a52938410cf5fb4dc4b8ae71c8887533646d8fe47030",
    "taef2_decoder.pth": "0a44a31e1ae59eb9dbf9359d24942fd3ef5928162c1800d97a28c61d51be0ab5",
    "taef2_encoder.pth": "10a4e1021e89d7551eaf161352da8dbd0b1aa83872ae28b150c1df1ce2f147b6",
    "taesd_decoder.safetensors": "d903e7cc3ae58f21d985a3498a841fa8b230edccff7ac5d27607b0c557945c6f",
    "taesd_encoder.safetensors": "a6b8c0fda4aad50784e543389e0239c72c5e31e9775c9e612ea8333bf3a77dcb",
    "taesdxl_decoder.safetensors": "ae5256b046b01d577279ed93a55bbb1fb2689e55aa14cfc0f7f841e0160202a5",
    "taesdxl_encoder.safetensors": "3d78013286676a1a51074831230f90972e573698fe4b11416d6f28e0cd5bbe7e",
    FACE_DETECTOR: "104ee26c71d5c270ce79a6b3dced91c91013260d29a6bf18f9296c5b8c4c2b12",
}

# weights.fingerprint of each published (model, part): tells taesd from taesdxl (same
# shapes) whatever the file's name, format or precision. Pinned by tests/test_models.py
# against the files in ../shared/models.
FINGERPRINTS: dict[str, dict[str, str]] = {
    "taesd": {"encoder": "193d2668dffa9c72d17f7a4c9149ad7a",
              "decoder": "d0cf55504db16d65f89299b05c214a9e"},
    "taesdxl": {"encoder": "2db547fa129692d057cb9e90e53a0e97",
                "decoder": "0727bf3d41b332cb3882394a4b950cac"},
    "taef1": {"encoder": "455f6422edb218951031bb1d5c685352",
              "decoder": "ce6b66db8bf99cb4fac8b8a75698c737"},
    "taef2": {"encoder": "280823c1d0cce10947f380034525dc5b",
              "decoder": "f61c7de7cdd2a6149c48a3c5b75bb04e"},
}

# weights.values_digest of each published (model, part): another export of the same
# weights (fp32, another tool's file) under a pinned name is recognised by it. Pinned by
# tests/test_models.py against the files in ../shared/models.
KNOWN_VALUES: dict[str, dict[str, str]] = {
    "taesd": {
        "encoder": "36f5615d5a81204d62f1911d5f4bfd9518b9855649872be6f35beb5d7beadb39",
        "decoder": "2c7175c381560328cb97428e572fdd84c61e9e4401f2c1d759873e432dce0dc1"},
    "taesdxl": {
        "encoder": "f79e663e85cd2c402576dad8f476fc973150d4a97cc452d601f28e66e41fc98e",
        "decoder": "da181205b96edfc4fe6c4edabc23812c664c02d00d68af86e57965d3c325b086"},
    "taef1": {
        "encoder": "8f7ed7345a3368abc04d63f6f42e6ed4c44db340827fa0805139100449d8f3af",
        "decoder": "3daa3629892eb8ea3ed827f5f1fd04ebf46d3f17fe5257459ed634f38bc7a0ac"},
    "taef2": {
        "encoder": "8df005c32fed8786de09905fe9d7e8f121ea4f9f6035a5f3ac651152b03e8824",
        "decoder": "68d65988d90cc297f637f3093efb3a6418d9d4ba4b5de97c4d02b8d60200f237"},
}

ALL_MODEL_NAMES: tuple[str, ...] = tuple(MODELS)


def get_spec(name: str) -> ModelSpec:
    from ..errors import ConfigError

    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; choose from {', '.join(ALL_MODEL_NAMES)}"
        ) from None
