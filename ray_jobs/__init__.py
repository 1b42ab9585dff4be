"""Entry points for `ray job submit` (thin drivers around `ccrs`). Training drivers arrive with the training issues."""
