"""ccrs: Customized Conversational Recommender Systems (Li et al., ECML-PKDD 2022) on Ray."""

__version__ = "0.1.0"
