/**
 * A minimal Parquet writer for test fixtures (no writer library is a dependency): one row group,
 * one PLAIN data page (v1) per column, REQUIRED columns of UTF-8 strings or INT64, pages
 * uncompressed or GZIP. Metadata in the Thrift compact protocol, per parquet-format.
 */
import { writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

type TV =
  | { t: 'i32'; v: number }
  | { t: 'i64'; v: number | bigint }
  | { t: 'bin'; v: string | Uint8Array }
  | { t: 'list'; elem: 'i32' | 'bin' | 'struct'; v: TV[] }
  | { t: 'struct'; f: [number, TV][] };

const TYPE = { i32: 5, i64: 6, bin: 8, list: 9, struct: 12 } as const;

class Out {
  bytes: number[] = [];
  varint(n: bigint): void {
    let x = n;
    do {
      let b = Number(x & 0x7fn);
      x >>= 7n;
      if (x > 0n) b |= 0x80;
      this.bytes.push(b);
    } while (x > 0n);
  }
  zigzag(n: number | bigint): void {
    const x = BigInt(n);
    this.varint(x >= 0n ? x << 1n : (-x << 1n) - 1n);
  }
  value(v: TV): void {
    switch (v.t) {
      case 'i32':
      case 'i64':
        this.zigzag(v.v);
        return;
      case 'bin': {
        const b = typeof v.v === 'string' ? Buffer.from(v.v, 'utf8') : v.v;
        this.varint(BigInt(b.length));
        for (const x of b) this.bytes.push(x);
        return;
      }
      case 'list': {
        const et = TYPE[v.elem];
        if (v.v.length < 15) this.bytes.push((v.v.length << 4) | et);
        else {
          this.bytes.push(0xf0 | et);
          this.varint(BigInt(v.v.length));
        }
        for (const e of v.v) this.value(e);
        return;
      }
      case 'struct': {
        let last = 0;
        for (const [id, fv] of v.f) {
          const d = id - last;
          if (d > 0 && d <= 15) this.bytes.push((d << 4) | TYPE[fv.t]);
          else {
            this.bytes.push(TYPE[fv.t]);
            this.zigzag(id);
          }
          this.value(fv);
          last = id;
        }
        this.bytes.push(0);
      }
    }
  }
}

function thrift(v: TV): Buffer {
  const o = new Out();
  o.value(v);
  return Buffer.from(o.bytes);
}

const i32 = (v: number): TV => ({ t: 'i32', v });
const i64 = (v: number | bigint): TV => ({ t: 'i64', v });
const bin = (v: string): TV => ({ t: 'bin', v });
const struct = (f: [number, TV][]): TV => ({ t: 'struct', f });

export function writeParquet(
  path: string,
  columns: Record<string, (string | bigint)[]>,
  opts: { codec?: 'UNCOMPRESSED' | 'GZIP' } = {},
): void {
  const codec = opts.codec === 'GZIP' ? 2 : 0;
  const names = Object.keys(columns);
  const numRows = columns[names[0]!]!.length;
  const parts: Buffer[] = [Buffer.from('PAR1')];
  let offset = 4;
  const chunks: TV[] = [];
  const schema: TV[] = [
    struct([
      [4, bin('schema')],
      [5, i32(names.length)],
    ]),
  ];
  for (const name of names) {
    const vals = columns[name]!;
    if (vals.length !== numRows) throw new Error(`column ${name}: ${vals.length} values, expected ${numRows}`);
    const isInt = typeof vals[0] === 'bigint';
    const ptype = isInt ? 2 : 6; // INT64 | BYTE_ARRAY
    schema.push(struct([[1, i32(ptype)], [3, i32(0)], [4, bin(name)], ...(isInt ? [] : ([[6, i32(0)]] as [number, TV][]))])); // REQUIRED, UTF8
    const data = Buffer.concat(
      vals.map((v) => {
        if (isInt) {
          const b = Buffer.alloc(8);
          b.writeBigInt64LE(v as bigint);
          return b;
        }
        const s = Buffer.from(v as string, 'utf8');
        const len = Buffer.alloc(4);
        len.writeUInt32LE(s.length);
        return Buffer.concat([len, s]);
      }),
    );
    const page = codec === 2 ? gzipSync(data) : data;
    const header = thrift(
      struct([
        [1, i32(0)], // DATA_PAGE
        [2, i32(data.length)],
        [3, i32(page.length)],
        [
          5,
          struct([
            [1, i32(numRows)],
            [2, i32(0)],
            [3, i32(3)],
            [4, i32(3)],
          ]),
        ], // PLAIN, RLE, RLE
      ]),
    );
    const start = offset;
    parts.push(header, page);
    offset += header.length + page.length;
    chunks.push(
      struct([
        [2, i64(start)],
        [
          3,
          struct([
            [1, i32(ptype)],
            [2, { t: 'list', elem: 'i32', v: [i32(0), i32(3)] }],
            [3, { t: 'list', elem: 'bin', v: [bin(name)] }],
            [4, i32(codec)],
            [5, i64(numRows)],
            [6, i64(header.length + data.length)],
            [7, i64(header.length + page.length)],
            [9, i64(start)],
          ]),
        ],
      ]),
    );
  }
  const meta = thrift(
    struct([
      [1, i32(1)],
      [2, { t: 'list', elem: 'struct', v: schema }],
      [3, i64(numRows)],
      [
        4,
        {
          t: 'list',
          elem: 'struct',
          v: [
            struct([
              [1, { t: 'list', elem: 'struct', v: chunks }],
              [2, i64(offset - 4)],
              [3, i64(numRows)],
            ]),
          ],
        },
      ],
      [6, bin('rac test writer')],
    ]),
  );
  const len = Buffer.alloc(4);
  len.writeUInt32LE(meta.length);
  parts.push(meta, len, Buffer.from('PAR1'));
  writeFileSync(path, Buffer.concat(parts));
}
