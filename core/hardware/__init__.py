"""Hardware: GPU utilisation, memory, power and cost per model version from Prometheus."""
