import CRabbitMQ

/// Conversions between Swift values and librabbitmq's C structures. Used only on the owner thread.
enum CTable {
    // MARK: Decoding (C → Swift)

    static func string(_ bytes: amqp_bytes_t) -> String {
        guard bytes.len > 0, let base = bytes.bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: base, count: bytes.len), as: UTF8.self)
    }

    static func array(_ bytes: amqp_bytes_t) -> [UInt8] {
        guard bytes.len > 0, let base = bytes.bytes else { return [] }
        return Array(UnsafeRawBufferPointer(start: base, count: bytes.len))
    }

    static func decode(_ table: amqp_table_t) -> AMQPTable {
        var result: AMQPTable = [:]
        guard table.num_entries > 0, let entries = table.entries else { return result }
        for i in 0..<Int(table.num_entries) {
            let entry = entries[i]
            result[string(entry.key)] = decode(entry.value)
        }
        return result
    }

    static func decode(_ field: amqp_field_value_t) -> AMQPFieldValue {
        let v = field.value
        switch Int32(field.kind) {
        case Int32(AMQP_FIELD_KIND_BOOLEAN.rawValue): return .bool(v.boolean != 0)
        case Int32(AMQP_FIELD_KIND_I8.rawValue): return .int(Int64(v.i8))
        case Int32(AMQP_FIELD_KIND_U8.rawValue): return .int(Int64(v.u8))
        case Int32(AMQP_FIELD_KIND_I16.rawValue): return .int(Int64(v.i16))
        case Int32(AMQP_FIELD_KIND_U16.rawValue): return .int(Int64(v.u16))
        case Int32(AMQP_FIELD_KIND_I32.rawValue): return .int(Int64(v.i32))
        case Int32(AMQP_FIELD_KIND_U32.rawValue): return .int(Int64(v.u32))
        case Int32(AMQP_FIELD_KIND_I64.rawValue): return .int(v.i64)
        case Int32(AMQP_FIELD_KIND_U64.rawValue): return .int(Int64(truncatingIfNeeded: v.u64))
        case Int32(AMQP_FIELD_KIND_F32.rawValue): return .double(Double(v.f32))
        case Int32(AMQP_FIELD_KIND_F64.rawValue): return .double(v.f64)
        case Int32(AMQP_FIELD_KIND_UTF8.rawValue): return .string(string(v.bytes))
        case Int32(AMQP_FIELD_KIND_BYTES.rawValue): return .bytes(array(v.bytes))
        case Int32(AMQP_FIELD_KIND_TIMESTAMP.rawValue): return .timestamp(v.u64)
        case Int32(AMQP_FIELD_KIND_TABLE.rawValue): return .table(decode(v.table))
        case Int32(AMQP_FIELD_KIND_ARRAY.rawValue):
            var items: [AMQPFieldValue] = []
            if v.array.num_entries > 0, let entries = v.array.entries {
                for i in 0..<Int(v.array.num_entries) { items.append(decode(entries[i])) }
            }
            return .array(items)
        default: return .void
        }
    }

    // MARK: Encoding (Swift → C)

    /// Owns the C memory of encoded tables and strings until `release()`.
    final class Arena {
        private var allocations: [UnsafeMutableRawPointer] = []

        func bytes(_ string: String) -> amqp_bytes_t {
            bytes(Array(string.utf8))
        }

        func bytes(_ data: [UInt8]) -> amqp_bytes_t {
            guard !data.isEmpty else { return amqp_bytes_t(len: 0, bytes: nil) }
            let raw = UnsafeMutableRawPointer.allocate(byteCount: data.count, alignment: 1)
            allocations.append(raw)
            data.withUnsafeBytes { raw.copyMemory(from: $0.baseAddress!, byteCount: data.count) }
            return amqp_bytes_t(len: data.count, bytes: raw)
        }

        func table(_ table: AMQPTable) -> amqp_table_t {
            guard !table.isEmpty else { return amqp_empty_table }
            let entries = UnsafeMutablePointer<amqp_table_entry_t>.allocate(capacity: table.count)
            allocations.append(UnsafeMutableRawPointer(entries))
            for (i, (key, value)) in table.sorted(by: { $0.key < $1.key }).enumerated() {
                (entries + i).initialize(to: amqp_table_entry_t(key: bytes(key), value: field(value)))
            }
            return amqp_table_t(num_entries: Int32(table.count), entries: entries)
        }

        func field(_ value: AMQPFieldValue) -> amqp_field_value_t {
            var f = amqp_field_value_t()
            switch value {
            case .bool(let b):
                f.kind = UInt8(AMQP_FIELD_KIND_BOOLEAN.rawValue); f.value.boolean = b ? 1 : 0
            case .int(let i):
                f.kind = UInt8(AMQP_FIELD_KIND_I64.rawValue); f.value.i64 = i
            case .double(let d):
                f.kind = UInt8(AMQP_FIELD_KIND_F64.rawValue); f.value.f64 = d
            case .string(let s):
                f.kind = UInt8(AMQP_FIELD_KIND_UTF8.rawValue); f.value.bytes = bytes(s)
            case .bytes(let b):
                f.kind = UInt8(AMQP_FIELD_KIND_BYTES.rawValue); f.value.bytes = bytes(b)
            case .timestamp(let t):
                f.kind = UInt8(AMQP_FIELD_KIND_TIMESTAMP.rawValue); f.value.u64 = t
            case .table(let t):
                f.kind = UInt8(AMQP_FIELD_KIND_TABLE.rawValue); f.value.table = table(t)
            case .array(let items):
                f.kind = UInt8(AMQP_FIELD_KIND_ARRAY.rawValue)
                let entries = UnsafeMutablePointer<amqp_field_value_t>.allocate(capacity: max(items.count, 1))
                allocations.append(UnsafeMutableRawPointer(entries))
                for (i, item) in items.enumerated() { (entries + i).initialize(to: field(item)) }
                f.value.array = amqp_array_t(num_entries: Int32(items.count), entries: entries)
            case .void:
                f.kind = UInt8(AMQP_FIELD_KIND_VOID.rawValue)
            }
            return f
        }

        func release() {
            for allocation in allocations { allocation.deallocate() }
            allocations.removeAll()
        }

        deinit { release() }
    }
}
