"""Lightning callbacks: progress output, plotting, probes."""
