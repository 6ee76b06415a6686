"""A checkpoint's fast tokenizer without importing transformers: its tokenizer.json run by the `tokenizers`
library exactly as transformers' `BertTokenizer` runs it.

Why: `import transformers` and its tokenizer classes cost about 1.2 s on a 2-core CPU, paid by every
command; `tokenizers` loads in 0.03 s. transformers' fast tokenizers are the same Rust pipeline from the
same tokenizer.json: per call it sets truncation and padding (`set_truncation_and_padding`) and calls
`encode_batch`, as `__call__` here does. Covered (`load`): a folder saved by transformers with
tokenizer.json and a BERT tokenizer class; the API the library uses plus the usual lookups
(`__call__`, `tokenize`, `convert_ids_to_tokens`, `convert_tokens_to_ids`, `get_vocab`, `len`, the
special tokens, `decode`, `save_pretrained`). Equality with transformers' tokenizer is tested on HANS, NLI
and adversarial text (tests/test_native_bert.py); `load_subject(path, native=False)` gives transformers'.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
_SPECIAL = ("pad", "sep", "cls", "unk", "mask")


class NativeTokenizer:
    """transformers' BertTokenizer behaviour on tokenizer.json (see the module doc)."""

    pad_token: str | None
    sep_token: str | None
    cls_token: str | None
    unk_token: str | None
    mask_token: str | None
    pad_token_id: int | None
    sep_token_id: int | None
    cls_token_id: int | None
    unk_token_id: int | None
    mask_token_id: int | None

    def __init__(self, folder: Path, backend: Any, config: dict[str, Any]):
        self.folder, self._tokenizer, self.config = folder, backend, config
        self.tokenizer_class = str(config["tokenizer_class"])  # what transformers would load (interp.compat)
        self.model_max_length = int(config.get("model_max_length") or 512)
        self.padding_side = config.get("padding_side") or "right"
        self.truncation_side = config.get("truncation_side") or "right"
        self.pad_token_type_id = int(config.get("pad_token_type_id") or 0)
        for kind in _SPECIAL:
            token = config.get(f"{kind}_token")
            setattr(self, f"{kind}_token", token)
            setattr(self, f"{kind}_token_id", None if token is None else backend.token_to_id(token))

    def __len__(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def __repr__(self) -> str:
        return f"NativeTokenizer({str(self.folder)!r}, vocab={len(self)})"

    def __call__(self, text: str | list[str], text_pair: str | list[str] | None = None, padding: bool | str = False,
                 truncation: bool | str = False, max_length: int | None = None, return_tensors: str | None = None,
                 add_special_tokens: bool = True) -> dict[str, Any]:
        """input_ids, token_type_ids, attention_mask of a text, a pair, or lists of them (lists of lists, or
        [batch, pos] tensors with return_tensors="pt")."""
        batched = isinstance(text, (list, tuple))
        if batched:
            if text_pair is not None and (isinstance(text_pair, str) or len(text_pair) != len(text)):
                raise ValueError(f"text_pair must be a list as long as text ({len(text)}), not {text_pair!r:.60}")
            inputs: list[Any] = list(zip(text, text_pair)) if text_pair is not None else list(text)
        else:
            inputs = [(text, text_pair)] if text_pair else [text]
        self._configure(padding, truncation, max_length)
        encodings = self._tokenizer.encode_batch(inputs, add_special_tokens=add_special_tokens)
        out = {"input_ids": [e.ids for e in encodings], "token_type_ids": [e.type_ids for e in encodings],
               "attention_mask": [e.attention_mask for e in encodings]}
        if return_tensors == "pt":
            return {k: torch.tensor(v, dtype=torch.long) for k, v in out.items()}  # [batch, pos]
        if return_tensors is not None:
            raise ValueError(f"return_tensors={return_tensors!r}: the native tokenizer returns 'pt' tensors or lists")
        return out if batched else {k: v[0] for k, v in out.items()}

    def _configure(self, padding: bool | str, truncation: bool | str, max_length: int | None) -> None:
        """transformers' set_truncation_and_padding: the backend's truncation and padding for one call."""
        tok = self._tokenizer
        if truncation in (False, "do_not_truncate"):
            if tok.truncation is not None:
                tok.no_truncation()
        elif truncation in (True, "longest_first"):
            tok.enable_truncation(max_length=max_length or self.model_max_length, stride=0, strategy="longest_first",
                                  direction=self.truncation_side)
        else:
            raise ValueError(f"truncation={truncation!r}: the native tokenizer truncates longest first (True) or not "
                             "at all; load_subject(path, native=False) gives transformers' tokenizer")
        if padding in (False, "do_not_pad"):
            if tok.padding is not None:
                tok.no_padding()
        elif padding in (True, "longest", "max_length"):
            tok.enable_padding(length=max_length if padding == "max_length" else None, direction=self.padding_side,
                               pad_id=self.pad_token_id or 0, pad_type_id=self.pad_token_type_id,
                               pad_token=self.pad_token or "[PAD]", pad_to_multiple_of=None)
        else:
            raise ValueError(f"padding={padding!r}: use True/'longest', 'max_length' or False")

    def tokenize(self, text: str, pair: str | None = None) -> list[str]:
        """Word pieces of a text (no special tokens)."""
        self._configure(False, False, None)
        return self._tokenizer.encode(text, pair, add_special_tokens=False).tokens

    def convert_ids_to_tokens(self, ids: int | list[int]) -> str | list[str]:
        if isinstance(ids, int):
            return self._tokenizer.id_to_token(ids)
        return [self._tokenizer.id_to_token(int(i)) for i in ids]

    def convert_tokens_to_ids(self, tokens: str | list[str]) -> int | None | list[int | None]:
        unk = self.unk_token_id

        def one(t: str) -> int | None:
            i = self._tokenizer.token_to_id(t)
            return unk if i is None else i
        return one(tokens) if isinstance(tokens, str) else [one(t) for t in tokens]

    def get_vocab(self) -> dict[str, int]:
        return self._tokenizer.get_vocab(with_added_tokens=True)

    def decode(self, ids: list[int] | torch.Tensor, skip_special_tokens: bool = False) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return self._tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def save_pretrained(self, folder: str | Path) -> None:
        """The checkpoint's tokenizer files, copied into `folder`."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        for name in _FILES:
            if (self.folder / name).is_file():
                shutil.copyfile(self.folder / name, Path(folder) / name)


def load(folder: Path) -> NativeTokenizer | None:
    """The tokenizer of checkpoint `folder`, or None where this module does not cover it (no tokenizer.json,
    or a class other than BERT's): the caller then loads transformers'."""
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return None
    if config.get("tokenizer_class") not in ("BertTokenizer", "BertTokenizerFast") or config.get("split_special_tokens") \
            or not all(config.get(f"{k}_token") for k in _SPECIAL) or not (folder / "tokenizer.json").is_file():
        return None
    from tokenizers import Tokenizer

    return NativeTokenizer(folder, Tokenizer.from_file(str(folder / "tokenizer.json")), config)
