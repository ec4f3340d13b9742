"""Process tuning: the host allocator, the persistent compilation cache, compiled-code accounting."""
