// The same tests the server's diff table uses (crates/query/src/stats.rs),
// applied per flame graph node so colour means the same as the table.

/** Two-sided p-value of the two-proportion z-test (pooled). */
export function twoProportionP(x1: number, n1: number, x2: number, n2: number): number {
  if (n1 <= 0 || n2 <= 0) return 1;
  const p = (x1 + x2) / (n1 + n2);
  // Too few expected samples for the normal approximation: call it noise
  // rather than claim a change (the server runs Fisher's test there).
  const expected = Math.min(p * n1, p * n2, (1 - p) * n1, (1 - p) * n2);
  if (expected < 5) return 1;
  const se = Math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2));
  if (se === 0) return 1;
  const z = Math.abs(x1 / n1 - x2 / n2) / se;
  return erfc(z / Math.SQRT2);
}

/** Complementary error function (Numerical Recipes' erfcc, |error| < 1.2e-7 relative). */
export function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

/** Benjamini–Hochberg adjusted q-values, in the input's order. */
export function bh(ps: number[]): Float64Array {
  const n = ps.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => ps[a] - ps[b]);
  const q = new Float64Array(n);
  let min = 1;
  for (let r = n - 1; r >= 0; r--) {
    const i = order[r];
    min = Math.min(min, (ps[i] * n) / (r + 1));
    q[i] = min;
  }
  return q;
}
