// Go's crypto/tls through net/http as a client: the proxy from the command line, TLS trusting
// only the CA file given, one GET; prints the body. Exit 1 when TLS or the request fails.
//
// usage: tls_client PROXY_PORT URL CAFILE
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"
)

func main() {
	proxyPort, target, caFile := os.Args[1], os.Args[2], os.Args[3]
	pem, err := os.ReadFile(caFile)
	if err != nil {
		fail("%v", err)
	}
	roots := x509.NewCertPool() // only this CA: no system store
	if !roots.AppendCertsFromPEM(pem) {
		fail("no certificate in %s", caFile)
	}
	proxy, _ := url.Parse("http://127.0.0.1:" + proxyPort)
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:           http.ProxyURL(proxy),
			TLSClientConfig: &tls.Config{RootCAs: roots},
		},
	}
	resp, err := client.Get(target)
	if err != nil {
		fail("%v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		fail("status %d: %v", resp.StatusCode, err)
	}
	os.Stdout.Write(body)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}
