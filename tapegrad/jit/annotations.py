"""``torch.jit.annotations``: the typing names TorchScript code imports from there
(``from torch.jit.annotations import List``, as timm's densenet does) and the
``BroadcastingList`` annotations of ``torch.nn.functional``'s signatures. tapegrad has no
TorchScript, so these are plain ``typing`` names.
"""
from typing import Any, Dict, List, Optional, Tuple, Union  # noqa: F401  (re-exported)


class BroadcastingListCls:
    """``BroadcastingList2[int]``: an int or a list of 2 ints in TorchScript; nothing here."""

    def __getitem__(self, types):
        return None


BroadcastingList1 = BroadcastingList2 = BroadcastingList3 = BroadcastingListCls()

__all__ = ["Any", "Dict", "List", "Optional", "Tuple", "Union", "BroadcastingList1", "BroadcastingList2",
           "BroadcastingList3"]
