"""Ray Serve application (recommender + generator deployments). Arrives with the serving issue."""
