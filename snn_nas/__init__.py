"""snn_nas package."""
