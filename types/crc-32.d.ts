declare module 'crc-32/crc32c' {
  export function buf(data: number[] | Uint8Array, seed?: number): number;
  export function str(data: string, seed?: number): number;
  const _default: { buf: typeof buf; str: typeof str };
  export default _default;
}
