"""Model building blocks (plain PyTorch / PyG; no Ray)."""

from ccrs.nn.user_relational_conv import UserRelationalConv

__all__ = ["UserRelationalConv"]
