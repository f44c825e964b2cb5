"""The assist models users can fetch: where from, how big, under which licence.

Facts from ../shared/design/CLICK_ASSIST.md and the release pages the public annotators
pin. Where no sha256 or no direct address is known, the entry says so (None) rather than
guess: such a file is downloaded unverified, or added from files the user fetched.
"""

from __future__ import annotations

from dataclasses import dataclass

LABELME_SAM = "https://github.com/wkentaro/labelme/releases/download/sam-20230416/"
EFFICIENT_SAM = "https://github.com/labelmeai/efficient-sam/releases/download/onnx-models-20231225/"
EDGE_SAM = "https://huggingface.co/spaces/chongzhou/EdgeSAM/resolve/main/weights/"


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file; url None: no direct address known, sha256 None: not known."""

    url: str | None
    sha256: str | None
    size_mb: float

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1] if self.url else ""


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    title: str
    family: str
    licence: str
    source_page: str
    encoder: RemoteFile
    decoder: RemoteFile
    commercial_use: bool = True
    note: str = ""

    @property
    def size_mb(self) -> float:
        return self.encoder.size_mb + self.decoder.size_mb

    @property
    def downloadable(self) -> bool:
        return bool(self.encoder.url and self.decoder.url)


CATALOGUE: tuple[CatalogueEntry, ...] = (
    CatalogueEntry(
        "sam-vit-b", "SAM ViT-B (quantized)", "SAM 1", "Apache-2.0",
        "https://github.com/facebookresearch/segment-anything",
        RemoteFile(LABELME_SAM + "sam_vit_b_01ec64.quantized.encoder.onnx",
                   "3346b9cc551c9902fbf3b203935e933592b22e042365f58321c17fc12641fd6a", 104),
        RemoteFile(LABELME_SAM + "sam_vit_b_01ec64.quantized.decoder.onnx",
                   "edbcf1a0afaa55621fb0abe6b3db1516818b609ea9368f309746a3afc68f7613", 8),
        note="encoder 10-17 s per image on 2 CPU cores",
    ),
    CatalogueEntry(
        "sam-vit-l", "SAM ViT-L (quantized)", "SAM 1", "Apache-2.0",
        "https://github.com/facebookresearch/segment-anything",
        RemoteFile(LABELME_SAM + "sam_vit_l_0b3195.quantized.encoder.onnx",
                   "f7158a4a1fe7f670ef47ea2f7f852685425c1ed6caa40f5df86cbe2b0502034f", 317),
        RemoteFile(LABELME_SAM + "sam_vit_l_0b3195.quantized.decoder.onnx",
                   "552ebb23bf52c5e5b971ac710d1eb8dccfd88b36cc6aff881d1536d1662e6d7b", 8),
    ),
    CatalogueEntry(
        "sam-vit-h", "SAM ViT-H (quantized)", "SAM 1", "Apache-2.0",
        "https://github.com/facebookresearch/segment-anything",
        RemoteFile(LABELME_SAM + "sam_vit_h_4b8939.quantized.encoder.onnx",
                   "a5c745fd4279efc5e5436b412200e983dafc2249ce172af6cc0002a71bb5f485", 626),
        RemoteFile(LABELME_SAM + "sam_vit_h_4b8939.quantized.decoder.onnx",
                   "020b385a45ffe51097e1acd10cd791075a86171153505f789a793bc382eef210", 8),
    ),
    CatalogueEntry(
        "mobilesam", "MobileSAM", "SAM 1", "Apache-2.0",
        "https://github.com/ChaoningZhang/MobileSAM",
        RemoteFile(None, None, 27), RemoteFile(None, None, 8),
        note="no pinned ONNX release known: export it or fetch it from the source page, then add it",
    ),
    CatalogueEntry(
        "sam2.1-tiny", "SAM 2.1 tiny (samexporter layout)", "SAM 2", "Apache-2.0",
        "https://github.com/vietanhdev/samexporter",
        RemoteFile(None, None, 128), RemoteFile(None, None, 20),
        note="export with samexporter from facebookresearch/sam2 checkpoints, then add it",
    ),
    CatalogueEntry(
        "sam2.1-small", "SAM 2.1 small (samexporter layout)", "SAM 2", "Apache-2.0",
        "https://github.com/vietanhdev/samexporter",
        RemoteFile(None, None, 155), RemoteFile(None, None, 20),
        note="export with samexporter from facebookresearch/sam2 checkpoints, then add it",
    ),
    CatalogueEntry(
        "efficientsam-ti", "EfficientSAM Ti", "EfficientSAM", "Apache-2.0",
        "https://github.com/yformer/EfficientSAM",
        RemoteFile(EFFICIENT_SAM + "efficient_sam_vitt_encoder.onnx",
                   "7a73ee65aa2c37237c89b4b18e73082f757ffb173899609c5d97a2bbd4ebb02d", 24.8),
        RemoteFile(EFFICIENT_SAM + "efficient_sam_vitt_decoder.onnx",
                   "e1afe46232c3bfa3470a6a81c7d3181836a94ea89528aff4e0f2d2c611989efd", 16.6),
    ),
    CatalogueEntry(
        "efficientsam-s", "EfficientSAM S", "EfficientSAM", "Apache-2.0",
        "https://github.com/yformer/EfficientSAM",
        RemoteFile(EFFICIENT_SAM + "efficient_sam_vits_encoder.onnx",
                   "4cacbb23c6903b1acf87f1d77ed806b840800c5fcd4ac8f650cbffed474b8896", 84),
        RemoteFile(EFFICIENT_SAM + "efficient_sam_vits_decoder.onnx",
                   "4727baf23dacfb51d4c16795b2ac382c403505556d0284e84c6ff3d4e8e36f22", 16.6),
        note="sizes approximate (about 100 MB in all)",
    ),
    CatalogueEntry(
        "edgesam", "EdgeSAM", "EdgeSAM", "S-Lab License 1.0 (non-commercial)",
        "https://github.com/chongzhou96/EdgeSAM",
        RemoteFile(EDGE_SAM + "edge_sam_3x_encoder.onnx", None, 21),
        RemoteFile(EDGE_SAM + "edge_sam_3x_decoder.onnx", None, 18),
        commercial_use=False,
        note="sha256 not known: downloaded files are not verified",
    ),
)


def catalogue_entry(name: str) -> CatalogueEntry | None:
    return next((entry for entry in CATALOGUE if entry.name == name), None)
