#include "proxy/session/worker_metrics.h"

#include <gtest/gtest.h>
#include <openssl/x509_vfy.h>

#include <sstream>
#include <string>

namespace mintgate::proxy {
namespace {

std::uint64_t Total(const LocalHistogram& h) {
  std::uint64_t n = 0;
  for (const auto& b : h.buckets()) n += b.value();
  return n;
}

// The value of the line `series` (name with labels, exactly) in Prometheus text, or -1.
long long Value(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stoll(line.substr(series.size() + 1));
  }
  return -1;
}

TEST(WorkerMetricsTest, HistogramBucketsAreUpperBoundsInclusive) {
  LocalHistogram h;
  h.ObserveUs(0);           // first bucket (<= 0.5 ms)
  h.ObserveUs(500);         // still the first: bounds are inclusive
  h.ObserveUs(501);         // second
  h.ObserveUs(60'000'000);  // above every bound: +Inf
  EXPECT_EQ(h.buckets()[0].value(), 2u);
  EXPECT_EQ(h.buckets()[1].value(), 1u);
  EXPECT_EQ(h.buckets().back().value(), 1u);
  EXPECT_EQ(Total(h), 4u);
  EXPECT_EQ(h.sum_us(), 60'001'001u);
}

TEST(WorkerMetricsTest, LabelledCountersStopGrowingAtTheirLimit) {
  LabelledCounters c;
  for (std::size_t i = 0; i < LabelledCounters::kMaxLabels + 10; ++i) {
    c.Add("label" + std::to_string(i));
  }
  c.Add("label0");
  const auto snapshot = c.Snapshot();
  EXPECT_EQ(snapshot.size(), LabelledCounters::kMaxLabels + 1);  // + "other"
  EXPECT_EQ(snapshot.at("label0"), 2u);
  EXPECT_EQ(snapshot.at("other"), 10u);
}

TEST(WorkerMetricsTest, ScrapeSumsTheWorkers) {
  WorkerMetrics a;
  WorkerMetrics b;
  a.accepted.Add(3);
  a.closed.Add(1);
  b.accepted.Add(4);
  a.requests[static_cast<std::size_t>(ActionIndex::kDecrypt)][2].Add(5);
  b.requests[static_cast<std::size_t>(ActionIndex::kDecrypt)][2].Add(6);
  b.requests[static_cast<std::size_t>(ActionIndex::kBlock)][4].Add();
  a.refused[static_cast<std::size_t>(Refusal::kProxyHeader)].Add(2);
  a.client_alerts.Add("unknown_ca");
  b.client_alerts.Add("unknown_ca");
  b.client_alerts.Add("bad \"quoted\"");
  a.client_bytes.read.Add(100);
  b.client_bytes.read.Add(23);
  a.origin_failures[static_cast<std::size_t>(OriginFailureOf(X509_V_ERR_CERT_HAS_EXPIRED))].Add();
  a.request_duration.ObserveUs(2'000);
  b.request_duration.ObserveUs(2'000'000);
  std::ostringstream out;
  WriteWorkerMetrics(out, {&a, &b});
  const std::string text = out.str();
  EXPECT_EQ(Value(text, "mintgate_connections_accepted_total"), 7);
  EXPECT_EQ(Value(text, "mintgate_connections_active{worker=\"0\"}"), 2);
  EXPECT_EQ(Value(text, "mintgate_connections_active{worker=\"1\"}"), 4);
  EXPECT_EQ(Value(text, "mintgate_requests_total{action=\"decrypt\",code=\"2xx\"}"), 11);
  EXPECT_EQ(Value(text, "mintgate_requests_total{action=\"block\",code=\"4xx\"}"), 1);
  EXPECT_EQ(Value(text, "mintgate_requests_total{action=\"http\",code=\"none\"}"), 0);
  EXPECT_EQ(Value(text, "mintgate_connections_refused_total{reason=\"proxy_header\"}"), 2);
  EXPECT_EQ(Value(text, "mintgate_client_alerts_total{alert=\"unknown_ca\"}"), 2);
  // A label value from the network is escaped, never a broken line.
  EXPECT_EQ(Value(text, "mintgate_client_alerts_total{alert=\"bad \\\"quoted\\\"\"}"), 1);
  EXPECT_EQ(Value(text, "mintgate_received_bytes_total{peer=\"client\"}"), 123);
  EXPECT_EQ(Value(text, "mintgate_origin_verify_failures_total{reason=\"expired\"}"), 1);
  // Cumulative buckets: 2 ms is under 2.5 ms, 2 s under 2.5 s.
  EXPECT_EQ(Value(text, "mintgate_request_duration_seconds_bucket{le=\"0.001\"}"), 0);
  EXPECT_EQ(Value(text, "mintgate_request_duration_seconds_bucket{le=\"0.0025\"}"), 1);
  EXPECT_EQ(Value(text, "mintgate_request_duration_seconds_bucket{le=\"2.5\"}"), 2);
  EXPECT_EQ(Value(text, "mintgate_request_duration_seconds_bucket{le=\"+Inf\"}"), 2);
  EXPECT_EQ(Value(text, "mintgate_request_duration_seconds_count"), 2);
  EXPECT_NE(text.find("mintgate_request_duration_seconds_sum 2.002000\n"), std::string::npos);
  // Every family is declared once.
  EXPECT_EQ(text.find("# TYPE mintgate_requests_total"),
            text.rfind("# TYPE mintgate_requests_total"));
}

TEST(WorkerMetricsTest, OriginFailureReasons) {
  EXPECT_EQ(OriginFailureOf(X509_V_ERR_HOSTNAME_MISMATCH), OriginFailure::kHostnameMismatch);
  EXPECT_EQ(OriginFailureOf(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT), OriginFailure::kSelfSigned);
  EXPECT_EQ(OriginFailureOf(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY),
            OriginFailure::kUnknownIssuer);
  EXPECT_EQ(OriginFailureOf(X509_V_ERR_CERT_NOT_YET_VALID), OriginFailure::kNotYetValid);
  EXPECT_EQ(OriginFailureOf(X509_V_ERR_INVALID_PURPOSE), OriginFailure::kOtherVerify);
}

TEST(WorkerMetricsTest, ActionNamesRoundTrip) {
  for (const char* name : {"decrypt", "tunnel", "block", "http", "portal", "auth"}) {
    EXPECT_EQ(ActionName(ActionIndexOf(name)), name);
  }
  EXPECT_EQ(ActionIndexOf("something else"), ActionIndex::kOther);
}

}  // namespace
}  // namespace mintgate::proxy
