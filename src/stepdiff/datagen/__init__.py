"""Training-data generation (paper Sec. 3.2): clip descriptions from several sources."""
