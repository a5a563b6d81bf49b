#include "proxy/cli/ca_commands.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "tls/cert_info.h"
#include "tls/cert_loader.h"

namespace mintgate::proxy {
namespace {

class CaCommandsTest : public ::testing::Test {
 protected:
  CaCommandsTest() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "cacmd.XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
  }
  ~CaCommandsTest() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string File(const std::string& name) const { return dir_ + "/" + name; }

  // Creates a CA in DIR/name and returns the path of its certificate.
  std::string InitCa(const std::string& name) {
    CaInitArgs args;
    args.out_dir = File(name);
    args.name = "Cmd " + name;
    std::ostringstream out, err;
    EXPECT_EQ(RunCaInit(args, out, err), 0) << err.str();
    return args.out_dir + "/ca.pem";
  }

  std::string dir_;
};

TEST_F(CaCommandsTest, InitPrintsPathsSubjectKeyAndFingerprint) {
  CaInitArgs args;
  args.out_dir = File("ca");
  args.name = "Cmd Root";
  args.key = "rsa-2048";
  args.days = 10;
  std::ostringstream out, err;
  ASSERT_EQ(RunCaInit(args, out, err), 0) << err.str();
  EXPECT_EQ(err.str(), "");

  tls::X509Ptr cert = tls::LoadCertificate(args.out_dir + "/ca.pem");
  tls::CertInfo info = tls::DescribeCertificate(cert.get());
  std::string text = out.str();
  for (const std::string& expected :
       {args.out_dir + "/ca.pem", args.out_dir + "/ca.key", std::string("CN=Cmd Root,O=mintgate"),
        std::string("RSA 2048"), tls::FormatTime(info.not_after), info.sha256}) {
    EXPECT_NE(text.find(expected), std::string::npos) << "missing '" << expected << "' in\n"
                                                      << text;
  }
  struct stat st {};
  ASSERT_EQ(stat((args.out_dir + "/ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(CaCommandsTest, InitRefusesExistingCaAndBadArguments) {
  InitCa("ca");
  CaInitArgs args;
  args.out_dir = File("ca");
  std::ostringstream out, err;
  EXPECT_EQ(RunCaInit(args, out, err), 2);
  EXPECT_NE(err.str().find("already exists"), std::string::npos) << err.str();

  args.out_dir = File("other");
  args.key = "dsa-1024";
  err.str("");
  EXPECT_EQ(RunCaInit(args, out, err), 2);
  EXPECT_NE(err.str().find("dsa-1024"), std::string::npos) << err.str();
  EXPECT_FALSE(std::filesystem::exists(File("other")));

  args.key = "ecdsa-p256";
  args.days = 0;
  EXPECT_EQ(RunCaInit(args, out, err), 2);
}

TEST_F(CaCommandsTest, ShowPrintsOneBlockPerCertificate) {
  std::string a = InitCa("a");
  std::string b = InitCa("b");
  std::string both = File("both.pem");
  {
    std::ifstream ina(a), inb(b);
    std::ofstream(both) << ina.rdbuf() << inb.rdbuf();
  }
  std::ostringstream out, err;
  ASSERT_EQ(RunCaShow({both}, false, out, err), 0) << err.str();
  std::string text = out.str();
  tls::X509Ptr cert_b = std::move(tls::LoadCertificates(both).at(1));
  for (const char* expected :
       {"(certificate 1 of 2)", "(certificate 2 of 2)", "subject:     CN=Cmd a,O=mintgate",
        "issuer:      CN=Cmd b,O=mintgate", "key type:    ECDSA P-256",
        "CA:          yes (path length unlimited)", "self-signed: yes",
        "key usage:   keyCertSign, cRLSign", "SAN:         (none)"}) {
    EXPECT_NE(text.find(expected), std::string::npos) << "missing '" << expected << "' in\n"
                                                      << text;
  }
  EXPECT_NE(text.find(tls::Sha256Fingerprint(cert_b.get())), std::string::npos);
}

TEST_F(CaCommandsTest, ShowJsonIsOneObjectWithAllFields) {
  std::string a = InitCa("a");
  std::ostringstream out, err;
  ASSERT_EQ(RunCaShow({a, a}, true, out, err), 0) << err.str();
  nlohmann::json doc = nlohmann::json::parse(out.str());
  ASSERT_TRUE(doc.is_object());
  ASSERT_EQ(doc.size(), 1u);
  const nlohmann::json& certs = doc.at("certificates");
  ASSERT_EQ(certs.size(), 2u);
  const nlohmann::json& c = certs[0];
  tls::X509Ptr cert = tls::LoadCertificate(a);
  tls::CertInfo info = tls::DescribeCertificate(cert.get());
  EXPECT_EQ(c.at("file"), a);
  EXPECT_EQ(c.at("subject"), "CN=Cmd a,O=mintgate");
  EXPECT_EQ(c.at("subject_cn"), "Cmd a");
  EXPECT_EQ(c.at("issuer"), "CN=Cmd a,O=mintgate");
  EXPECT_EQ(c.at("issuer_cn"), "Cmd a");
  EXPECT_EQ(c.at("serial"), info.serial_hex);
  EXPECT_EQ(c.at("not_before"), tls::FormatTime(info.not_before));
  EXPECT_EQ(c.at("not_after"), tls::FormatTime(info.not_after));
  EXPECT_EQ(c.at("key_type"), "ECDSA P-256");
  EXPECT_EQ(c.at("sha256"), info.sha256);
  EXPECT_EQ(c.at("ca"), true);
  EXPECT_TRUE(c.at("path_len").is_null());
  EXPECT_EQ(c.at("self_signed"), true);
  EXPECT_EQ(c.at("key_usage"), nlohmann::json({"keyCertSign", "cRLSign"}));
  EXPECT_EQ(c.at("san"), nlohmann::json::array());
}

TEST_F(CaCommandsTest, ShowReportsBadFilesAndContinues) {
  std::string good = InitCa("a");
  std::string key = File("a/ca.key");
  std::string missing = File("missing.pem");
  std::ostringstream out, err;
  EXPECT_EQ(RunCaShow({key, good, missing}, false, out, err), 2);
  EXPECT_NE(err.str().find(key + ": not a certificate"), std::string::npos) << err.str();
  EXPECT_NE(err.str().find(missing + ": cannot read"), std::string::npos) << err.str();
  EXPECT_NE(out.str().find("CN=Cmd a"), std::string::npos) << out.str();

  std::ostringstream json_out, json_err;
  EXPECT_EQ(RunCaShow({key, good}, true, json_out, json_err), 2);
  EXPECT_EQ(nlohmann::json::parse(json_out.str()).at("certificates").size(), 1u);
}

}  // namespace
}  // namespace mintgate::proxy
