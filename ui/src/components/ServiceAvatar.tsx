import { hashString, initial } from "../lib/format";

export const AVATAR_COLOURS = 8;

/** A coloured circle with the service's initial (no images are loaded). */
export function ServiceAvatar({ id, name, size = "md" }: { id: string; name: string; size?: "sm" | "md" }) {
  const colour = hashString(id || name) % AVATAR_COLOURS;
  return (
    <span class={`avatar avatar-${size} avatar-c${colour}`} aria-hidden="true">
      {initial(name)}
    </span>
  );
}
