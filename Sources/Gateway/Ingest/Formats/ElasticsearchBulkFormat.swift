import Foundation
import HTTPTypes
import NIOCore
import Shared

extension HTTPField.Name {
    /// What Elasticsearch's clients check they are talking to.
    static let elasticProduct = HTTPField.Name("X-Elastic-Product")!
}

/// The write subset of Elasticsearch's bulk API (`POST|PUT /_bulk`, `/{index}/_bulk`), which rsyslog, syslog-ng,
/// Filebeat, Logstash, Fluent Bit and Vector speak: NDJSON, an `index` or `create` action line then its document,
/// each document a log event (`ECSDocument`). Answered as Elasticsearch 8 answers: 200 with one status per item (201,
/// or 400 with an error for a refused document; `errors` when any was refused), so a shipper retries only what failed;
/// the accepted items are appended before the answer, as everywhere. A request that is not a bulk request (an
/// unknown action, an action without its document line, a line that is not JSON) is refused whole (400), and so are
/// rate limits (429) and Redis trouble (503), in Elasticsearch's error shape, so shippers back off.
///
/// Authentication: `x-api-key`, or `Authorization: ApiKey <base64 of organization:key>` (Elastic's form, the id
/// naming the organization) or `Authorization: Basic` (the organization as the user, the key as the password). An
/// empty user or id leaves the organization to the key, `x-organization-id`, or `default`.
struct ElasticsearchBulkFormat: IngestFormat {
    var kind: EventKind { .logs }
    var isBatch: Bool { true }
    var successStatus: HTTPResponse.Status { .ok }
    var answerFields: HTTPFields? { Self.productFields }

    static let productFields: HTTPFields = [.elasticProduct: "Elasticsearch"]

    /// NDJSON or JSON, as Elasticsearch reads them (its versioned `vnd.elasticsearch` types included); a request
    /// without a `Content-Type` is read as NDJSON. Anything else is a 406, as Elasticsearch answers it.
    func variant(of request: HTTPRequest) -> Result<UInt8, GatewayError> {
        guard let type = request.headerFields.value(of: .contentType) else { return .success(0) }
        switch MediaType.essence(type) {
        case "application/x-ndjson", "application/json", "application/vnd.elasticsearch+x-ndjson", "application/vnd.elasticsearch+json":
            return .success(0)
        default:
            return .failure(GatewayError(status: .notAcceptable, message: "Content-Type header [\(type.prefix(100))] is not supported"))
        }
    }

    func credentials(of request: HTTPRequest) -> Result<Credentials, GatewayError> {
        var credentials = Credentials(headers: request)
        guard credentials.key == nil, let authorization = request.headerFields.value(of: .authorization) else { return .success(credentials) }
        switch Self.authorization(authorization) {
        case .failure(let error): return .failure(error)
        case .success(let (user, key)):
            credentials.key = key.isEmpty ? nil : key
            guard !user.isEmpty else { return .success(credentials) }
            if let header = credentials.organization, header != user {
                return .failure(
                    .badRequest("x-organization-id names organization \(header.prefix(64)) but the Authorization user names \(user.prefix(64))"))
            }
            credentials.organization = user
            credentials.organizationSource = "organization in the Authorization user"
            return .success(credentials)
        }
    }

    /// The user (or API key id) and the key of `ApiKey <base64 id:key>` or `Basic <base64 user:password>`.
    static func authorization(_ value: String) -> Result<(user: String, key: String), GatewayError> {
        let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        let scheme = parts.first.map { $0.lowercased() } ?? ""
        let refused = GatewayError(
            status: .unauthorized,
            message: "Authorization must be 'ApiKey <base64 of organization:key>' or 'Basic <base64 of organization:key>', or use x-api-key")
        guard scheme == "apikey" || scheme == "basic", parts.count == 2,
            let decoded = Data(base64Encoded: String(parts[1].trimmingCharacters(in: .whitespaces))),
            let text = String(data: decoded, encoding: .utf8), let colon = text.firstIndex(of: ":")
        else { return .failure(refused) }
        return .success((String(text[..<colon]), String(text[text.index(after: colon)...])))
    }

    func answer(_ error: GatewayError, request: HTTPRequest) -> FormatAnswer {
        var headers = error.headers
        if error.status == .unauthorized { headers[.wwwAuthenticate] = #"ApiKey, Basic realm="operyn", charset="UTF-8""# }
        return FormatAnswer(
            status: error.status, headers: headers, body: ByteBuffer(bytes: Self.errorBody(error)), contentType: "application/json; charset=utf-8")
    }

    /// `{"error": {"root_cause": [...], "type": ..., "reason": ...}, "status": N}`, the type as Elasticsearch names
    /// the failure (`es_rejected_execution_exception` for a rate limit, which shippers retry).
    static func errorBody(_ error: GatewayError) -> [UInt8] {
        let type: String
        switch error.status.code {
        case 400: type = error.message.hasPrefix("Malformed") ? "illegal_argument_exception" : "parse_exception"
        case 401, 403: type = "security_exception"
        case 406: type = "media_type_header_exception"
        case 413: type = "content_too_long_exception"
        case 429: type = "es_rejected_execution_exception"
        case 503: type = "unavailable_shards_exception"
        default: type = error.status.code >= 500 ? "exception" : "illegal_argument_exception"
        }
        var cause: [UInt8] = Array(#"{"type":"#.utf8)
        JSONValue.encodeString(type, into: &cause)
        cause += Array(#","reason":"#.utf8)
        JSONValue.encodeString(error.message, into: &cause)
        cause.append(UInt8(ascii: "}"))
        var body: [UInt8] = Array(#"{"error":{"root_cause":["#.utf8) + cause + Array(#"],"type":"#.utf8)
        JSONValue.encodeString(type, into: &body)
        body += Array(#","reason":"#.utf8)
        JSONValue.encodeString(error.message, into: &body)
        body += Array(#"},"status":\#(error.status.code)}"#.utf8)
        return body
    }

    // MARK: The body

    /// One action of the request, and what became of it.
    private struct Item {
        var action: String
        var index: String?
        var id: String?
        /// The event's position among the request's events; `nil` when refused.
        var event: Int?
        var refusal: (type: String, reason: String)?
    }

    func parse(_ body: ByteBuffer, _ request: FormatRequest) throws(GatewayError) -> ParsedBody {
        let pathIndex = request.parameter
        if let pathIndex, let problem = Self.indexProblem(pathIndex) {
            throw .badRequest("Invalid index name [\(ECSDocument.clipped(pathIndex))], \(problem)")
        }
        let mapping = ECSDocument(validator: request.validator)
        var items: [Item] = []
        var events: [IngestEvent] = []
        let result: Result<Void, GatewayError> = body.withUnsafeReadableBytes { bytes in
            var lines = Lines(bytes)
            // Shippers repeat one action line (`{"create":{"_index":"logs-app"}}`): read once per request.
            var last: (line: UnsafeRawBufferPointer, action: Action)?
            while let (number, line) = lines.next() {
                if Lines.isBlank(line) { continue }
                let action: Action
                if let last, last.line.count == line.count, memcmp(last.line.baseAddress!, line.baseAddress!, line.count) == 0 {
                    action = last.action
                } else {
                    switch Self.action(line, number: number) {
                    case .success(let read): action = read
                    case .failure(let error): return .failure(error)
                    }
                    last = (line, action)
                }
                if items.count == request.limits.maxBatchEvents {
                    return .failure(
                        GatewayError(
                            status: .contentTooLarge,
                            message: "Bulk request has more than \(request.limits.maxBatchEvents) items, the limit per request; send smaller batches"))
                }
                var item = Item(action: action.name, index: action.index ?? pathIndex, id: action.id)
                if action.name == "delete" {
                    item.refusal = ("illegal_argument_exception", "the delete action is not supported: events are kept as they were accepted")
                    items.append(item)
                    continue
                }
                guard let (_, document) = lines.next() else {
                    return .failure(.badRequest("Malformed bulk request: the \(action.name) action on line \(number) has no document line"))
                }
                if action.name == "update" {
                    item.refusal = ("illegal_argument_exception", "the update action is not supported: events are kept as they were accepted")
                } else if let index = action.index, let problem = action.indexProblem {
                    item.refusal = ("invalid_index_name_exception", "Invalid index name [\(ECSDocument.clipped(index))], \(problem)")
                } else {
                    do throws(ECSDocument.Refusal) {
                        let value: JSONValue
                        do throws(JSONParseError) {
                            value = try JSONParser.parse(bytes: document)
                        } catch {
                            throw ECSDocument.Refusal(reason: "failed to parse: \(error.description)")
                        }
                        events.append(try mapping.event(value, index: item.index, id: action.id, now: request.receivedAt))
                        item.event = events.count - 1
                    } catch {
                        item.refusal = ("document_parsing_exception", error.reason)
                    }
                }
                items.append(item)
            }
            return .success(())
        }
        try result.get()
        guard !items.isEmpty else { throw .badRequest("Malformed bulk request: no requests added; the body holds no action line") }
        let queued = request.queued(events)
        return ParsedBody(events: queued, bytes: body.readableBytes, answer: Self.answer(items, queued, took: request.started))
    }

    /// An action line: `{"index": {"_index": ..., "_id": ...}}`, or `create`, `delete`, `update`.
    private struct Action {
        var name: String
        var index: String?
        var id: String?
        /// What is wrong with `index`, if anything.
        var indexProblem: String?
    }

    private static func action(_ line: UnsafeRawBufferPointer, number: Int) -> Result<Action, GatewayError> {
        let malformed = { (what: String) in GatewayError.badRequest("Malformed action/metadata line [\(number)], \(what)") }
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes: line)
        } catch {
            return .failure(malformed("it is not JSON: \(error.description)"))
        }
        guard case .object(let members) = value, members.count == 1, let (name, metadata) = members.first else {
            return .failure(malformed("expected an object with one action of [create, delete, index, update], got \(value.typeName)"))
        }
        guard ["index", "create", "delete", "update"].contains(name) else {
            return .failure(malformed("expected one of [create, delete, index, update] but found [\(ECSDocument.clipped(name))]"))
        }
        guard case .object(let fields) = metadata else {
            return .failure(malformed("the \(name) action's metadata must be an object, got \(metadata.typeName)"))
        }
        var action = Action(name: name)
        for (key, field) in fields where key == "_index" || key == "_id" {
            guard case .string(let text) = field else { return .failure(malformed("\(key) must be a string, got \(field.typeName)")) }
            if key == "_index" {
                action.index = text
                action.indexProblem = indexProblem(text)
            } else {
                action.id = text
            }
        }
        return .success(action)
    }

    /// What is wrong with an index name, by Elasticsearch's rules; `nil` when nothing is. Read byte by byte: it is
    /// asked of every action line that names an index.
    static func indexProblem(_ name: String) -> String? {
        let bytes = name.utf8
        guard let first = bytes.first else { return "must not be empty" }
        if bytes.count > 255 { return "index name is too long, (\(bytes.count) > 255)" }
        if name == "." || name == ".." { return "must not be '.' or '..'" }
        if first == UInt8(ascii: "_") || first == UInt8(ascii: "-") || first == UInt8(ascii: "+") { return "must not start with '_', '-', or '+'" }
        var uppercase = false
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "*"), UInt8(ascii: "?"), UInt8(ascii: "\""), UInt8(ascii: "<"), UInt8(ascii: ">"),
                UInt8(ascii: "|"), UInt8(ascii: " "), UInt8(ascii: ","), UInt8(ascii: "#"), UInt8(ascii: ":"), 0...0x1F:
                return #"must not contain the following characters [ , ", *, \, <, |, ,, >, /, ?, #, :]"#
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): uppercase = true
            default: break
            }
        }
        return uppercase ? "must be lowercase" : nil
    }

    /// `{"took": ms, "errors": bool, "items": [{"create": {"_index": ..., "_id": ..., "status": 201}}, ...]}`, written
    /// straight into one buffer (an answer is some 190 bytes per item). Items of one action line share their opening,
    /// written once; the gateway's ids (UUIDs) need no escaping.
    private static func answer(_ items: [Item], _ events: [QueuedEvent], took started: NIODeadline) -> [UInt8] {
        var body: [UInt8] = []
        body.reserveCapacity(64 + items.count * 200)
        body.append(contentsOf: #"{"took":"#.utf8)
        appendDecimal(max(0, (NIODeadline.now() - started).nanoseconds / 1_000_000), to: &body)
        body.append(contentsOf: items.contains { $0.event == nil } ? #","errors":true,"items":["#.utf8 : #","errors":false,"items":["#.utf8)
        var opening: (action: String, index: String?, bytes: [UInt8]) = ("", nil, [])
        for (position, item) in items.enumerated() {
            if position > 0 { body.append(UInt8(ascii: ",")) }
            if opening.bytes.isEmpty || opening.action != item.action || opening.index != item.index {
                var bytes = Array(#"{""#.utf8)
                bytes.append(contentsOf: item.action.utf8)
                bytes.append(contentsOf: #"":{"_index":"#.utf8)
                JSONValue.encodeString(item.index ?? "", into: &bytes)
                bytes.append(contentsOf: #","_id":"#.utf8)
                opening = (item.action, item.index, bytes)
            }
            body.append(contentsOf: opening.bytes)
            if let event = item.event {
                if let id = item.id {
                    JSONValue.encodeString(id, into: &body)
                } else {
                    body.append(UInt8(ascii: "\""))
                    body.append(contentsOf: events[event].id.utf8)
                    body.append(UInt8(ascii: "\""))
                }
                body.append(contentsOf: #","_version":1,"result":"created","_shards":{"total":1,"successful":1,"failed":0},"_seq_no":"#.utf8)
                appendDecimal(Int64(event), to: &body)
                body.append(contentsOf: #","_primary_term":1,"status":201}}"#.utf8)
            } else {
                if let id = item.id { JSONValue.encodeString(id, into: &body) } else { body.append(contentsOf: "null".utf8) }
                body.append(contentsOf: #","status":400,"error":{"type":"#.utf8)
                JSONValue.encodeString(item.refusal?.type ?? "illegal_argument_exception", into: &body)
                body.append(contentsOf: #","reason":"#.utf8)
                JSONValue.encodeString(item.refusal?.reason ?? "", into: &body)
                body.append(contentsOf: "}}}".utf8)
            }
        }
        body.append(contentsOf: "]}".utf8)
        return body
    }

    private static func appendDecimal(_ value: Int64, to body: inout [UInt8]) {
        guard value >= 10 else { return body.append(UInt8(ascii: "0") + UInt8(max(0, value))) }
        appendDecimal(value / 10, to: &body)
        body.append(UInt8(ascii: "0") + UInt8(value % 10))
    }
}

/// The lines of an NDJSON body, numbered from 1, read in place (`\r\n` endings too).
private struct Lines {
    let bytes: UnsafeRawBufferPointer
    var offset = 0
    var number = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    mutating func next() -> (Int, UnsafeRawBufferPointer)? {
        guard offset < bytes.count else { return nil }
        let start = offset
        var end = bytes.count
        if let base = bytes.baseAddress, let found = memchr(base + start, 0x0A, bytes.count - start) {
            end = base.distance(to: UnsafeRawPointer(found))
        }
        offset = end + 1
        number += 1
        var last = end
        if last > start && bytes[last - 1] == 0x0D { last -= 1 }
        return (number, UnsafeRawBufferPointer(rebasing: bytes[start..<last]))
    }

    static func isBlank(_ line: UnsafeRawBufferPointer) -> Bool {
        line.allSatisfy { $0 == 0x20 || $0 == 0x09 }
    }
}
