// Burns about `ms` of CPU, so the bench measures engine overhead against real work.
export default function spin(ms) {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) x++;
  return x;
}
