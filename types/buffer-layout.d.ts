// Minimal typings for the parts of buffer-layout ext4kit uses (the package ships none).
declare module 'buffer-layout' {
  export class Layout {
    span: number;
    property?: string;
    decode(b: Buffer, offset?: number): any;
    encode(src: any, b: Buffer, offset?: number): number;
    offsetOf(property: string): number | undefined;
  }
  export function struct(fields: Layout[], property?: string): Layout;
  export function u8(property?: string): Layout;
  export function u16(property?: string): Layout;
  export function u32(property?: string): Layout;
  export function nu64(property?: string): Layout;
  export function u16be(property?: string): Layout;
  export function u32be(property?: string): Layout;
  export function nu64be(property?: string): Layout;
  export function blob(length: number, property?: string): Layout;
  const lo: {
    struct: typeof struct; u8: typeof u8; u16: typeof u16; u32: typeof u32; nu64: typeof nu64;
    u16be: typeof u16be; u32be: typeof u32be; nu64be: typeof nu64be; blob: typeof blob;
  };
  export default lo;
}
