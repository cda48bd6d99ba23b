-- wrk script for bench/auth-path.pl: after the run, print one line that the
-- driver parses (latencies in microseconds).

done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d bytes=%d"
      .. " p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%d"
      .. " connect=%d read=%d write=%d status=%d timeout=%d\n",
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, latency.mean,
      e.connect, e.read, e.write, e.status, e.timeout))
end
