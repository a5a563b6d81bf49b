// Flow control between a relay's source and its sink: the source reads while the sink's write
// queue is at most the high watermark, and once stopped, resumes only at or below the low one.
// Memory per connection stays bounded whatever the body size, without a stop and a start per
// read around a single level.
#pragma once

#include <cstddef>

namespace mintgate::proxy {

struct Watermarks {
  static constexpr std::size_t kHigh = 1 << 20;
  static constexpr std::size_t kLow = 256 << 10;
  static bool SourceReads(bool reading_now, std::size_t sink_queued) {
    return reading_now ? sink_queued <= kHigh : sink_queued <= kLow;
  }
};

}  // namespace mintgate::proxy
