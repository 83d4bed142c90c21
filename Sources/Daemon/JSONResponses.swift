import Hummingbird
import LumosCore

/// A JSON response (every vmadmd answer is JSON, errors included: docs/daemon.md).
public struct JSONResponse: ResponseGenerator {
    public var status: HTTPResponse.Status
    public var value: JSONValue

    public init(_ value: JSONValue, status: HTTPResponse.Status = .ok) {
        self.value = value
        self.status = status
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        Response(status: status, headers: [.contentType: "application/json"],
                 body: ResponseBody(byteBuffer: ByteBuffer(string: value.serialized(pretty: false) + "\n")))
    }

    /// The error body: `{"code": "...", "message": "..."}`.
    public static func error(_ status: HTTPResponse.Status, code: String, message: String) -> JSONResponse {
        JSONResponse(["code": .string(code), "message": .string(message)], status: status)
    }
}

extension Request {
    /// The body as JSON (at most 4 MiB); an empty body is `{}` when `emptyIsObject`.
    public mutating func jsonBody(emptyIsObject: Bool = false) async throws -> JSONValue {
        let buffer = try await collectBody(upTo: 4 << 20)
        let bytes = Array(buffer.readableBytesView)
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 }) {
            if emptyIsObject { return .object([:]) }
            throw LumosError.invalid("the request has no body; send a JSON object")
        }
        return try JSONValue.parse(bytes, what: "request body")
    }
}

/// Maps the library's errors to HTTP: bad input is 4xx with a JSON body naming what was wrong,
/// only Lumos's own failures are 5xx.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as LumosError {
            return try Self.response(for: error).response(from: request, context: context)
        } catch let error as HTTPError {
            let message = error.body ?? (error.status == .notFound ? "no such resource: \(request.method) \(request.uri.path)" : error.status.reasonPhrase)
            var response = try JSONResponse.error(error.status, code: Self.code(error.status), message: message)
                .response(from: request, context: context)
            for field in error.headers { response.headers.append(field) }
            return response
        } catch let error as Errno {
            return try JSONResponse.error(.internalServerError, code: "InternalError", message: error.description)
                .response(from: request, context: context)
        } catch {
            // Hummingbird's own request errors (a body too large, a bad header) are the client's.
            if let e = error as? any HTTPResponseError, e.status.code < 500 {
                return try JSONResponse.error(e.status, code: Self.code(e.status), message: "\(e.status.reasonPhrase)")
                    .response(from: request, context: context)
            }
            return try JSONResponse.error(.internalServerError, code: "InternalError", message: oneLine(error))
                .response(from: request, context: context)
        }
    }

    static func response(for error: LumosError) -> JSONResponse {
        let status: HTTPResponse.Status
        switch error.kind {
        case .invalidArgument, .usage: status = .badRequest
        case .notFound: status = .notFound
        case .exists, .busy: status = .conflict
        case .permission: status = .forbidden
        case .unsupported: status = .unprocessableContent
        case .quota, .noSpace: status = HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")
        case .corrupt, .io, .failed: status = .internalServerError
        }
        return .error(status, code: code(error.kind), message: oneLine(error.message))
    }

    static func code(_ kind: LumosError.Kind) -> String {
        switch kind {
        case .invalidArgument, .usage: return "InvalidArgument"
        case .notFound: return "ResourceNotFound"
        case .exists: return "Conflict"
        case .busy: return "Busy"
        case .permission: return "Forbidden"
        case .unsupported: return "Unsupported"
        case .quota, .noSpace: return "NoSpace"
        case .corrupt, .io, .failed: return "InternalError"
        }
    }

    static func code(_ status: HTTPResponse.Status) -> String {
        switch status.code {
        case 400: return "InvalidArgument"
        case 401: return "Unauthorized"
        case 404: return "ResourceNotFound"
        case 405: return "MethodNotAllowed"
        case 413: return "PayloadTooLarge"
        default: return status.code < 500 ? "BadRequest" : "InternalError"
        }
    }
}

/// The TCP listener's gate: `Authorization: Bearer TOKEN` with the token file's contents, or 401.
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: [UInt8]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let given = request.headers[.authorization].map { Array($0.utf8) } ?? []
        let prefix = Array("Bearer ".utf8)
        guard given.count == prefix.count + token.count, Array(given.prefix(prefix.count)) == prefix,
              Self.constantTimeEqual(Array(given.dropFirst(prefix.count)), token) else {
            var response = try JSONResponse.error(.unauthorized, code: "Unauthorized",
                                                  message: "this listener needs Authorization: Bearer TOKEN (the daemon's --token-file)")
                .response(from: request, context: context)
            response.headers[.wwwAuthenticate] = "Bearer"
            return response
        }
        return try await next(request, context)
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}
