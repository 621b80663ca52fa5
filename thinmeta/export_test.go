package thinmeta

// CachedBlocks is how many mappings the lookup cache holds at most.
const CachedBlocks = cacheBuckets * bucketBlocks
