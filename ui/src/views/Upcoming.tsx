const WHAT: Record<string, string> = {
  Baselines: 'What normal looks like for each service: latency, errors, CPU and function shares, with their bands.',
};

export function Upcoming({ title }: { title: string }) {
  return (
    <div class="state empty">
      <h2>{title}</h2>
      <p>{WHAT[title]}</p>
      <p class="muted">This page is not available in this version of perfpilot yet.</p>
    </div>
  );
}
