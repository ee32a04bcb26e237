// A typed worker module for the type test (never run).
export default function add(a: number, b: number): number {
  return a + b;
}
export async function resize(img: { w: number; h: number }, factor: number): Promise<{ w: number; h: number }> {
  return { w: img.w * factor, h: img.h * factor };
}
export function greet(name: string): string {
  return `hi ${name}`;
}
export const version = '1.0';
export async function threadInitializer(): Promise<void> {}
