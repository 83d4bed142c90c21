import Foundation
import Glibc
import LumosCore
import Testing
import Zones

/// vmadmd on TCP: only with TLS and a bearer token, requests without the token are refused,
/// and schemathesis (PyPI, scripts/install-deps.sh) finds no 5xx and no crash against the
/// OpenAPI document (docs/api/openapi.yaml) and the live daemon over real zones.
@Suite(.serialized, .enabled(if: isRoot, "needs root: pools, namespaces and cgroups"))
struct DaemonTCPTests {
    /// A self-signed certificate for 127.0.0.1, a token file (0600) and a free port.
    struct TLSFiles {
        let cert: String
        let key: String
        let tokenFile: String
        let token: String
        let port: Int

        init(in dir: String) throws {
            cert = dir + "/cert.pem"
            key = dir + "/key.pem"
            tokenFile = dir + "/token"
            _ = try Exec.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                              "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                              "-addext", "subjectAltName=IP:127.0.0.1"])
            token = (0..<32).map { _ in String("abcdefghijklmnopqrstuvwxyz0123456789".randomElement()!) }.joined()
            try Files.writeAtomically(tokenFile, token + "\n", mode: 0o600)
            port = Int.random(in: 20000...60000)
        }

        var args: [String] { ["--listen", "127.0.0.1:\(port)", "--tls-cert", cert, "--tls-key", key, "--token-file", tokenFile] }
        var url: String { "https://127.0.0.1:\(port)" }
    }

    @Test func tcpNeedsTLSAndATokenAndRefusesRequestsWithoutIt() throws {
        let h = try DaemonHost("tcp")
        defer { h.close() }
        let tls = try TLSFiles(in: h.dir)

        // Refused at start: TCP without TLS or without a token, or a token others can read.
        let noTLS = try h.lumos(["daemon", "--socket", h.socket, "--listen", "127.0.0.1:\(tls.port)"])
        #expect(noTLS.status == 2 && noTLS.stderr.contains("--tls-cert"), "\(noTLS.stderr)")
        let noToken = try h.lumos(["daemon", "--socket", h.socket, "--listen", "127.0.0.1:\(tls.port)", "--tls-cert", tls.cert, "--tls-key", tls.key])
        #expect(noToken.status == 2 && noToken.stderr.contains("--token-file"), "\(noToken.stderr)")
        chmod(tls.tokenFile, 0o644)
        let readable = try h.lumos(["daemon", "--socket", h.socket] + tls.args)
        #expect(readable.status != 0 && readable.stderr.contains("readable by others"), "\(readable.stderr)")
        chmod(tls.tokenFile, 0o600)
        #expect(!Files.exists(h.socket), "nothing was started")

        try h.startDaemon(["--no-autoboot"] + tls.args)
        let k = ["-k"]
        let none = try h.request("GET", "/tenants", url: tls.url, curl: k)
        #expect(none.status == 401 && none.json?.lookup("code") == "Unauthorized", "\(none.body)")
        let wrong = try h.request("GET", "/tenants", url: tls.url, curl: k + ["-H", "Authorization: Bearer \(String(tls.token.reversed()))"])
        #expect(wrong.status == 401)
        let basic = try h.request("GET", "/tenants", url: tls.url, curl: k + ["-H", "Authorization: Basic \(tls.token)"])
        #expect(basic.status == 401)
        // A refused create changes nothing.
        let refusedCreate = try h.request("POST", "/tenants", body: h.payload().serialized(), url: tls.url, curl: k)
        #expect(refusedCreate.status == 401)
        #expect(try h.vmadm().store.uuids().isEmpty)
        let good = try h.request("GET", "/tenants", url: tls.url, curl: k + ["-H", "Authorization: Bearer \(tls.token)"])
        #expect(good.status == 200 && good.json == [], "\(good.body)")
        // Plain HTTP on the TLS port gets no answer.
        #expect((try? h.request("GET", "/ping", url: "http://127.0.0.1:\(tls.port)")) == nil)
        // The unix socket needs no token (root only by its mode).
        #expect(try h.request("GET", "/tenants").status == 200)
    }

    @Test func schemathesisFindsNoServerErrors() throws {
        guard Exec.which("schemathesis") != nil || Files.exists("/root/.pyenv/shims/schemathesis") else {
            Issue.record("schemathesis is not installed; run scripts/install-deps.sh")
            return
        }
        let h = try DaemonHost("schema")
        defer { h.close() }
        let tls = try TLSFiles(in: h.dir)
        try h.startDaemon(["--no-autoboot"] + tls.args)
        // A real tenant with a snapshot, so that some generated requests reach real objects.
        let created = try h.api("POST", "/tenants", h.payload(["alias": "fuzzed", "autoboot": false]))
        #expect(created.status == 201)

        let exe = Exec.which("schemathesis") ?? "/root/.pyenv/shims/schemathesis"
        let r = try Exec.run([exe, "run", DaemonHost.repository + "/docs/api/openapi.yaml", "--url", tls.url,
                              "-H", "Authorization: Bearer \(tls.token)", "--tls-verify", "false",
                              "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                              "--phases", "examples,coverage,fuzzing", "--max-examples", "25", "--workers", "1",
                              // GET /events is an endless stream by design; EventsTests checks it.
                              "--exclude-operation-id", "streamEvents",
                              "--request-timeout", "120"], check: false)
        #expect(r.status == 0, "schemathesis: \(r.stdout.suffix(6000)) \(r.stderr.suffix(2000))")
        // The daemon is still there and answers.
        #expect(try h.request("GET", "/ping").status == 200)
        var status: Int32 = 0
        #expect(waitpid(h.daemonPid, &status, WNOHANG) == 0, "the daemon died: \(h.log)")
    }
}
