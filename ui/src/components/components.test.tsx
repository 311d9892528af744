import { fireEvent, screen } from "@testing-library/preact";
import { useState } from "preact/hooks";
import { describe, expect, it } from "vitest";

import { renderIn } from "../test/render";
import { ActionBadge } from "./ActionBadge";
import { ServiceAvatar } from "./ServiceAvatar";
import { Tabs } from "./Tabs";
import { stackTimeline } from "./TimelineChart";

describe("components", () => {
  it("stacks the timeline bottom to top: allow, monitor, warn, coach, block", () => {
    const s = stackTimeline([
      { start: 0, allow: 1, monitor: 2, warn: 3, coach: 4, block: 5 },
      { start: 1, allow: 0, monitor: 0, warn: 0, coach: 0, block: 7 },
    ]);
    expect(s).toEqual([
      [1, 0],
      [3, 0],
      [6, 0],
      [10, 0],
      [15, 7],
    ]);
  });

  it("labels badges with text, not colour alone", () => {
    renderIn(
      <>
        <ActionBadge action="block" />
        <ActionBadge action="monitor" />
      </>,
      "en",
    );
    expect(screen.getByText("Blocked").className).toBe("badge badge-block");
    expect(screen.getByText("Monitored")).toBeTruthy();
  });

  it("draws a service's initial in a stable colour", () => {
    const { container } = renderIn(<ServiceAvatar id="claude" name="claude" />);
    const a = container.querySelector(".avatar")!;
    expect(a.textContent).toBe("C");
    expect(a.getAttribute("aria-hidden")).toBe("true");
    expect(a.className).toMatch(/avatar-c[0-7]$/);
  });

  it("moves between tabs with the arrow keys, Home and End", () => {
    function T() {
      const [sel, setSel] = useState<"a" | "b" | "c">("a");
      return (
        <Tabs
          items={[
            { id: "a", label: "A" },
            { id: "b", label: "B" },
            { id: "c", label: "C" },
          ]}
          selected={sel}
          onSelect={setSel}
          label="tabs"
          idPrefix="t"
        />
      );
    }
    renderIn(<T />);
    const tab = (n: string) => screen.getByRole("tab", { name: n });
    expect(tab("A").tabIndex).toBe(0);
    expect(tab("B").tabIndex).toBe(-1);
    fireEvent.keyDown(tab("A"), { key: "ArrowLeft" });
    expect(tab("C").getAttribute("aria-selected")).toBe("true");
    expect(document.activeElement).toBe(tab("C"));
    fireEvent.keyDown(tab("C"), { key: "Home" });
    expect(tab("A").getAttribute("aria-selected")).toBe("true");
    fireEvent.keyDown(tab("A"), { key: "End" });
    expect(tab("C").getAttribute("aria-selected")).toBe("true");
  });
});
