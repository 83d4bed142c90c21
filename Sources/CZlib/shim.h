// zlib (Debian zlib1g-dev) for the PNG heatmaps of Sources/Analytics (docs/analytics.md).
#include <zlib.h>
