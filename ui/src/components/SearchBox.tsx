// A list's free-text search: labelled by its placeholder, for screen readers too.
export function SearchBox({ label, value, onChange }: { label: string; value: string; onChange: (v: string) => void }) {
  return (
    <input
      type="search"
      class="input search"
      aria-label={label}
      placeholder={label}
      value={value}
      onInput={(e) => onChange(e.currentTarget.value)}
    />
  );
}
