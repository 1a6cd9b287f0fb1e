"""SSL algorithms behind one hook contract (base.Algorithm), looked up by name (registry)."""
