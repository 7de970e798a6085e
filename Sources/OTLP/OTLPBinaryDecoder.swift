import Foundation
import Shared
import SwiftProtobuf

/// The protobuf wire format read into the generated OTLP messages: swift-protobuf's `Decoder` protocol, which the
/// generated `decodeMessage(decoder:)` drives field by field, implemented here.
///
/// swift-protobuf's own binary decoder does the same, but from another module and unspecialized: every nested message,
/// array and enum asks the runtime for generic metadata and every field is an indirect call (a quarter of the
/// gateway's CPU on an OTLP log batch). This one lives in the module of the generated code, so the compiler
/// specializes `decodeMessage` for it from the top message down.
///
/// It reads as swift-protobuf's decoder reads with `discardUnknownFields` and a `messageDepthLimit`, and throws its
/// errors (`BinaryDecodingError`): unknown fields and fields sent with another wire type than their declaration's are
/// skipped; repeated scalars are read packed or not; a later value of a singular field replaces an earlier one and a
/// repeated message field appends; a message field seen twice is merged; strings must be UTF-8; a length must fit in
/// the bytes left and under 2 GiB; nesting (messages and groups) deeper than the limit is refused. Extensions: the
/// OTLP messages declare none, so an extension field is an unknown field.
struct OTLPBinaryDecoder: SwiftProtobuf.Decoder {
    /// The next byte to read.
    private var p: UnsafeRawPointer
    /// The end of the message being read (of a length-delimited field's body inside the body).
    private var end: UnsafeRawPointer
    /// Where the current field's value starts (just after its tag).
    private var valueStart: UnsafeRawPointer
    private var fieldNumber = 0
    private var wireFormat: UInt8 = 0
    /// Whether the current field's value was read; if not, `nextFieldNumber` skips it.
    private var consumed = true
    /// The group being read, which its end-group tag closes.
    private var groupFieldNumber: Int?
    /// How many more messages may nest.
    private var depthBudget: Int

    private static let varint: UInt8 = 0
    private static let fixed64: UInt8 = 1
    private static let lengthDelimited: UInt8 = 2
    private static let startGroup: UInt8 = 3
    private static let endGroup: UInt8 = 4
    private static let fixed32: UInt8 = 5

    private init(_ bytes: UnsafeRawBufferPointer, depthLimit: Int) {
        // An empty buffer may have no address: any address serves, nothing is read.
        let start = bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
        p = start
        end = start + bytes.count
        valueStart = start
        depthBudget = depthLimit
    }

    /// `bytes` read as a `Message`, nested at most `depthLimit` deep (the message itself counts as one).
    static func decode<Message: SwiftProtobuf.Message>(_ type: Message.Type, from bytes: UnsafeRawBufferPointer, depthLimit: Int) throws
        -> Message
    {
        var decoder = OTLPBinaryDecoder(bytes, depthLimit: depthLimit)
        var message = Message()
        try decoder.decodeFull(&message)
        return message
    }

    // MARK: Fields

    mutating func handleConflictingOneOf() throws {
        // The wire format lets a later member of a oneof replace an earlier one.
    }

    mutating func nextFieldNumber() throws -> Int? {
        if fieldNumber > 0 && !consumed {
            p = valueStart
            try skipValue(wireFormat: wireFormat, fieldNumber: fieldNumber)
        }
        if p == end { return nil }
        let tag = try readTag()
        wireFormat = UInt8(truncatingIfNeeded: tag & 7)
        fieldNumber = Int(tag >> 3)
        guard wireFormat <= Self.fixed32, fieldNumber > 0 else { throw BinaryDecodingError.malformedProtobuf }
        valueStart = p
        consumed = false
        if wireFormat == Self.endGroup {
            guard fieldNumber == groupFieldNumber else { throw BinaryDecodingError.malformedProtobuf }
            return nil
        }
        return fieldNumber
    }

    mutating func decodeSingularFloatField(value: inout Float) throws { try fixed(&value, Float.init(bitPattern:)) }
    mutating func decodeSingularFloatField(value: inout Float?) throws { try fixed(&value, Float.init(bitPattern:)) }
    mutating func decodeRepeatedFloatField(value: inout [Float]) throws { try repeatedFixed(&value, Float.init(bitPattern:)) }
    mutating func decodeSingularDoubleField(value: inout Double) throws { try fixed(&value, Double.init(bitPattern:)) }
    mutating func decodeSingularDoubleField(value: inout Double?) throws { try fixed(&value, Double.init(bitPattern:)) }
    mutating func decodeRepeatedDoubleField(value: inout [Double]) throws { try repeatedFixed(&value, Double.init(bitPattern:)) }

    mutating func decodeSingularInt32Field(value: inout Int32) throws { try varint(&value, Int32.init(truncatingIfNeeded:)) }
    mutating func decodeSingularInt32Field(value: inout Int32?) throws { try varint(&value, Int32.init(truncatingIfNeeded:)) }
    mutating func decodeRepeatedInt32Field(value: inout [Int32]) throws { try repeatedVarint(&value, Int32.init(truncatingIfNeeded:)) }
    mutating func decodeSingularInt64Field(value: inout Int64) throws { try varint(&value, Int64.init(bitPattern:)) }
    mutating func decodeSingularInt64Field(value: inout Int64?) throws { try varint(&value, Int64.init(bitPattern:)) }
    mutating func decodeRepeatedInt64Field(value: inout [Int64]) throws { try repeatedVarint(&value, Int64.init(bitPattern:)) }
    mutating func decodeSingularUInt32Field(value: inout UInt32) throws { try varint(&value, UInt32.init(truncatingIfNeeded:)) }
    mutating func decodeSingularUInt32Field(value: inout UInt32?) throws { try varint(&value, UInt32.init(truncatingIfNeeded:)) }
    mutating func decodeRepeatedUInt32Field(value: inout [UInt32]) throws { try repeatedVarint(&value, UInt32.init(truncatingIfNeeded:)) }
    mutating func decodeSingularUInt64Field(value: inout UInt64) throws { try varint(&value, { $0 }) }
    mutating func decodeSingularUInt64Field(value: inout UInt64?) throws { try varint(&value, { $0 }) }
    mutating func decodeRepeatedUInt64Field(value: inout [UInt64]) throws { try repeatedVarint(&value, { $0 }) }
    mutating func decodeSingularSInt32Field(value: inout Int32) throws { try varint(&value, Self.zigZag32) }
    mutating func decodeSingularSInt32Field(value: inout Int32?) throws { try varint(&value, Self.zigZag32) }
    mutating func decodeRepeatedSInt32Field(value: inout [Int32]) throws { try repeatedVarint(&value, Self.zigZag32) }
    mutating func decodeSingularSInt64Field(value: inout Int64) throws { try varint(&value, Self.zigZag64) }
    mutating func decodeSingularSInt64Field(value: inout Int64?) throws { try varint(&value, Self.zigZag64) }
    mutating func decodeRepeatedSInt64Field(value: inout [Int64]) throws { try repeatedVarint(&value, Self.zigZag64) }

    mutating func decodeSingularFixed32Field(value: inout UInt32) throws { try fixed(&value, { $0 }) }
    mutating func decodeSingularFixed32Field(value: inout UInt32?) throws { try fixed(&value, { $0 }) }
    mutating func decodeRepeatedFixed32Field(value: inout [UInt32]) throws { try repeatedFixed(&value, { $0 }) }
    mutating func decodeSingularFixed64Field(value: inout UInt64) throws { try fixed(&value, { $0 }) }
    mutating func decodeSingularFixed64Field(value: inout UInt64?) throws { try fixed(&value, { $0 }) }
    mutating func decodeRepeatedFixed64Field(value: inout [UInt64]) throws { try repeatedFixed(&value, { $0 }) }
    mutating func decodeSingularSFixed32Field(value: inout Int32) throws { try fixed(&value, Int32.init(bitPattern:)) }
    mutating func decodeSingularSFixed32Field(value: inout Int32?) throws { try fixed(&value, Int32.init(bitPattern:)) }
    mutating func decodeRepeatedSFixed32Field(value: inout [Int32]) throws { try repeatedFixed(&value, Int32.init(bitPattern:)) }
    mutating func decodeSingularSFixed64Field(value: inout Int64) throws { try fixed(&value, Int64.init(bitPattern:)) }
    mutating func decodeSingularSFixed64Field(value: inout Int64?) throws { try fixed(&value, Int64.init(bitPattern:)) }
    mutating func decodeRepeatedSFixed64Field(value: inout [Int64]) throws { try repeatedFixed(&value, Int64.init(bitPattern:)) }

    mutating func decodeSingularBoolField(value: inout Bool) throws { try varint(&value, { $0 != 0 }) }
    mutating func decodeSingularBoolField(value: inout Bool?) throws { try varint(&value, { $0 != 0 }) }
    mutating func decodeRepeatedBoolField(value: inout [Bool]) throws { try repeatedVarint(&value, { $0 != 0 }) }

    mutating func decodeSingularStringField(value: inout String) throws { try lengthDelimited(&value, Self.string) }
    mutating func decodeSingularStringField(value: inout String?) throws { try lengthDelimited(&value, Self.string) }
    mutating func decodeRepeatedStringField(value: inout [String]) throws { try repeatedLengthDelimited(&value, Self.string) }
    mutating func decodeSingularBytesField(value: inout Data) throws { try lengthDelimited(&value, Self.data) }
    mutating func decodeSingularBytesField(value: inout Data?) throws { try lengthDelimited(&value, Self.data) }
    mutating func decodeRepeatedBytesField(value: inout [Data]) throws { try repeatedLengthDelimited(&value, Self.data) }

    /// An enum value the enum does not know (a closed enum) is left to be skipped, as an unknown field.
    mutating func decodeSingularEnumField<E: Enum>(value: inout E) throws where E.RawValue == Int {
        guard wireFormat == Self.varint, let known = E(rawValue: Int(Int32(truncatingIfNeeded: try readVarint()))) else { return }
        value = known
        consumed = true
    }

    mutating func decodeSingularEnumField<E: Enum>(value: inout E?) throws where E.RawValue == Int {
        guard wireFormat == Self.varint, let known = E(rawValue: Int(Int32(truncatingIfNeeded: try readVarint()))) else { return }
        value = known
        consumed = true
    }

    /// Values of a packed list the enum does not know are dropped.
    mutating func decodeRepeatedEnumField<E: Enum>(value: inout [E]) throws where E.RawValue == Int {
        var numbers: [Int32] = []
        try repeatedVarint(&numbers, Int32.init(truncatingIfNeeded:))
        value.append(contentsOf: numbers.compactMap { E(rawValue: Int($0)) })
    }

    mutating func decodeSingularMessageField<M: Message>(value: inout M?) throws {
        guard wireFormat == Self.lengthDelimited else { return }
        try withBody { decoder throws in
            if value == nil { value = M() }
            try decoder.decodeFull(&value!)
        }
    }

    mutating func decodeRepeatedMessageField<M: Message>(value: inout [M]) throws {
        guard wireFormat == Self.lengthDelimited else { return }
        try withBody { decoder throws in
            var element = M()
            try decoder.decodeFull(&element)
            value.append(element)
        }
    }

    mutating func decodeSingularGroupField<G: Message>(value: inout G?) throws {
        guard wireFormat == Self.startGroup else { return }
        var group = value ?? G()
        try decodeGroup(&group)
        value = group
    }

    mutating func decodeRepeatedGroupField<G: Message>(value: inout [G]) throws {
        guard wireFormat == Self.startGroup else { return }
        var group = G()
        try decodeGroup(&group)
        value.append(group)
    }

    mutating func decodeMapField<KeyType, ValueType: MapValueType>(
        fieldType: _ProtobufMap<KeyType, ValueType>.Type, value: inout _ProtobufMap<KeyType, ValueType>.BaseType
    ) throws {
        try mapEntry(value: &value, key: KeyType.self, default: ValueType.proto3DefaultValue) { (entry: inout ValueType.BaseType?, decoder) in
            try ValueType.decodeSingular(value: &entry, from: &decoder)
        }
    }

    mutating func decodeMapField<KeyType, ValueType>(
        fieldType: _ProtobufEnumMap<KeyType, ValueType>.Type, value: inout _ProtobufEnumMap<KeyType, ValueType>.BaseType
    ) throws where ValueType.RawValue == Int {
        try mapEntry(value: &value, key: KeyType.self, default: ValueType()) { (entry: inout ValueType?, decoder) in
            try decoder.decodeSingularEnumField(value: &entry)
        }
    }

    mutating func decodeMapField<KeyType, ValueType>(
        fieldType: _ProtobufMessageMap<KeyType, ValueType>.Type, value: inout _ProtobufMessageMap<KeyType, ValueType>.BaseType
    ) throws {
        try mapEntry(value: &value, key: KeyType.self, default: ValueType()) { (entry: inout ValueType?, decoder) in
            try decoder.decodeSingularMessageField(value: &entry)
        }
    }

    /// No extension is registered (the OTLP messages declare none): the field stays unread and is skipped.
    mutating func decodeExtensionField(values: inout ExtensionFieldValueSet, messageType: any Message.Type, fieldNumber: Int) throws {}

    // MARK: Reading

    /// A message to its end, one level deeper.
    private mutating func decodeFull<M: Message>(_ message: inout M) throws {
        depthBudget -= 1
        guard depthBudget >= 0 else { throw BinaryDecodingError.messageDepthLimit }
        let group = groupFieldNumber
        groupFieldNumber = nil
        try message.decodeMessage(decoder: &self)
        groupFieldNumber = group
        depthBudget += 1
        guard p == end else { throw BinaryDecodingError.trailingGarbage }
    }

    /// A group: its fields up to the end-group tag of its number, one level deeper.
    private mutating func decodeGroup<G: Message>(_ group: inout G) throws {
        depthBudget -= 1
        guard depthBudget >= 0 else { throw BinaryDecodingError.messageDepthLimit }
        let number = fieldNumber
        let outer = groupFieldNumber
        groupFieldNumber = number
        consumed = true
        try group.decodeMessage(decoder: &self)
        guard fieldNumber == number, wireFormat == Self.endGroup else { throw BinaryDecodingError.truncated }
        groupFieldNumber = outer
        depthBudget += 1
        wireFormat = Self.startGroup
        consumed = true
    }

    /// A length-delimited field's body read by `read`, with the decoder's end at the body's end for the while.
    private mutating func withBody(_ read: (inout OTLPBinaryDecoder) throws -> Void) throws {
        let length = try readLength()
        let number = fieldNumber
        let outerEnd = end
        end = p + length
        // The field is being read: the body's first `nextFieldNumber` must not skip it.
        consumed = true
        try read(&self)
        end = outerEnd
        fieldNumber = number
        wireFormat = Self.lengthDelimited
        consumed = true
    }

    /// A map entry (key 1, value 2, either may be absent and take its default; other fields skipped) into `value`.
    private mutating func mapEntry<Key: MapKeyType, Value>(
        value: inout [Key.BaseType: Value], key: Key.Type, default defaultValue: Value,
        readValue: (inout Value?, inout OTLPBinaryDecoder) throws -> Void
    ) throws {
        guard wireFormat == Self.lengthDelimited else { return }
        try withBody { decoder throws in
            var key: Key.BaseType?
            var entry: Value?
            let group = decoder.groupFieldNumber
            decoder.groupFieldNumber = nil
            while let number = try decoder.nextFieldNumber() {
                switch number {
                case 1: try Key.decodeSingular(value: &key, from: &decoder)
                case 2: try readValue(&entry, &decoder)
                default: break
                }
            }
            decoder.groupFieldNumber = group
            value[key ?? Key.proto3DefaultValue] = entry ?? defaultValue
        }
    }

    private mutating func varint<T>(_ value: inout T, _ convert: (UInt64) -> T) throws {
        guard wireFormat == Self.varint else { return }
        value = convert(try readVarint())
        consumed = true
    }

    private mutating func varint<T>(_ value: inout T?, _ convert: (UInt64) -> T) throws {
        guard wireFormat == Self.varint else { return }
        value = convert(try readVarint())
        consumed = true
    }

    /// One value, or a packed run of them.
    private mutating func repeatedVarint<T>(_ value: inout [T], _ convert: (UInt64) -> T) throws {
        switch wireFormat {
        case Self.varint:
            value.append(convert(try readVarint()))
            consumed = true
        case Self.lengthDelimited:
            try withBody { decoder throws in
                while decoder.p != decoder.end { value.append(convert(try decoder.readVarint())) }
            }
        default: return
        }
    }

    private mutating func fixed<Bits: FixedWidthInteger, T>(_ value: inout T, _ convert: (Bits) -> T) throws {
        guard wireFormat == Self.wireFormat(of: Bits.self) else { return }
        value = convert(try readFixed())
        consumed = true
    }

    private mutating func fixed<Bits: FixedWidthInteger, T>(_ value: inout T?, _ convert: (Bits) -> T) throws {
        guard wireFormat == Self.wireFormat(of: Bits.self) else { return }
        value = convert(try readFixed())
        consumed = true
    }

    /// One value, or a packed run of them (a run whose length is not a multiple of the size is truncated).
    private mutating func repeatedFixed<Bits: FixedWidthInteger, T>(_ value: inout [T], _ convert: (Bits) -> T) throws {
        switch wireFormat {
        case Self.wireFormat(of: Bits.self):
            value.append(convert(try readFixed()))
            consumed = true
        case Self.lengthDelimited:
            try withBody { decoder throws in
                let count = decoder.end - decoder.p
                guard count % MemoryLayout<Bits>.size == 0 else { throw BinaryDecodingError.truncated }
                value.reserveCapacity(value.count + count / MemoryLayout<Bits>.size)
                while decoder.p != decoder.end { value.append(convert(try decoder.readFixed())) }
            }
        default: return
        }
    }

    private mutating func lengthDelimited<T>(_ value: inout T, _ convert: (UnsafeRawBufferPointer) throws -> T) throws {
        guard wireFormat == Self.lengthDelimited else { return }
        value = try convert(try readBody())
        consumed = true
    }

    private mutating func lengthDelimited<T>(_ value: inout T?, _ convert: (UnsafeRawBufferPointer) throws -> T) throws {
        guard wireFormat == Self.lengthDelimited else { return }
        value = try convert(try readBody())
        consumed = true
    }

    private mutating func repeatedLengthDelimited<T>(_ value: inout [T], _ convert: (UnsafeRawBufferPointer) throws -> T) throws {
        guard wireFormat == Self.lengthDelimited else { return }
        value.append(try convert(try readBody()))
        consumed = true
    }

    private static func wireFormat<Bits: FixedWidthInteger>(of: Bits.Type) -> UInt8 {
        MemoryLayout<Bits>.size == 8 ? fixed64 : fixed32
    }

    private static func zigZag32(_ raw: UInt64) -> Int32 {
        let bits = UInt32(truncatingIfNeeded: raw)
        return Int32(bitPattern: bits >> 1) ^ -Int32(bitPattern: bits & 1)
    }

    private static func zigZag64(_ raw: UInt64) -> Int64 {
        Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1)
    }

    /// The bytes as a string when they are UTF-8 (`UTF8Text`: the standard library's `String(validating:as:)` would
    /// run unspecialized from here, asking the runtime for metadata on each string).
    private static func string(_ bytes: UnsafeRawBufferPointer) throws -> String {
        if bytes.isEmpty { return "" }
        guard let text = UTF8Text.validated(bytes.assumingMemoryBound(to: UInt8.self)) else { throw BinaryDecodingError.invalidUTF8 }
        return text
    }

    private static func data(_ bytes: UnsafeRawBufferPointer) -> Data {
        bytes.isEmpty ? Data() : Data(bytes: bytes.baseAddress!, count: bytes.count)
    }

    // MARK: The wire

    /// A tag: a varint of at most 5 bytes whose value fits in 32 bits.
    private mutating func readTag() throws -> UInt64 {
        let first = p.load(as: UInt8.self)
        if first < 0x80 {
            p += 1
            return UInt64(first)
        }
        let tag = try readVarint()
        guard tag <= UInt64(UInt32.max) else { throw BinaryDecodingError.malformedProtobuf }
        return tag
    }

    /// A varint: at most 10 bytes; one ending past the end is malformed, none left is truncated.
    private mutating func readVarint() throws -> UInt64 {
        guard p != end else { throw BinaryDecodingError.truncated }
        var byte = p.load(as: UInt8.self)
        p += 1
        if byte < 0x80 { return UInt64(byte) }
        var value = UInt64(byte & 0x7F)
        var shift: UInt64 = 7
        while true {
            guard p != end, shift <= 63 else { throw BinaryDecodingError.malformedProtobuf }
            byte = p.load(as: UInt8.self)
            p += 1
            value |= UInt64(byte & 0x7F) &<< shift
            if byte < 0x80 { return value }
            shift += 7
        }
    }

    private mutating func readFixed<Bits: FixedWidthInteger>() throws -> Bits {
        guard end - p >= MemoryLayout<Bits>.size else { throw BinaryDecodingError.truncated }
        defer { p += MemoryLayout<Bits>.size }
        return Bits(littleEndian: p.loadUnaligned(as: Bits.self))
    }

    /// A length: under 2 GiB (as protobuf's own limit) and within the bytes left.
    private mutating func readLength() throws -> Int {
        let length = try readVarint()
        guard length < 0x7FFF_FFFF else { throw BinaryDecodingError.malformedProtobuf }
        guard length <= UInt64(end - p) else { throw BinaryDecodingError.truncated }
        return Int(length)
    }

    private mutating func readBody() throws -> UnsafeRawBufferPointer {
        let length = try readLength()
        defer { p += length }
        return UnsafeRawBufferPointer(start: p, count: length)
    }

    /// Past a value of `wireFormat`; a group up to its end-group tag, one level deeper.
    private mutating func skipValue(wireFormat: UInt8, fieldNumber: Int) throws {
        switch wireFormat {
        case Self.varint: _ = try readVarint()
        case Self.fixed64: _ = try readFixed() as UInt64
        case Self.fixed32: _ = try readFixed() as UInt32
        case Self.lengthDelimited: p += try readLength()
        case Self.startGroup:
            depthBudget -= 1
            guard depthBudget >= 0 else { throw BinaryDecodingError.messageDepthLimit }
            while true {
                guard p != end else { throw BinaryDecodingError.truncated }
                let tag = try readTag()
                let innerWireFormat = UInt8(truncatingIfNeeded: tag & 7)
                let innerNumber = Int(tag >> 3)
                guard innerWireFormat <= Self.fixed32, innerNumber > 0 else { throw BinaryDecodingError.malformedProtobuf }
                if innerWireFormat == Self.endGroup {
                    guard innerNumber == fieldNumber else { throw BinaryDecodingError.malformedProtobuf }
                    break
                }
                try skipValue(wireFormat: innerWireFormat, fieldNumber: innerNumber)
            }
            depthBudget += 1
        default: throw BinaryDecodingError.truncated
        }
    }
}
