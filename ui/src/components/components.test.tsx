import { fireEvent, screen } from "@testing-library/preact";
import { useState } from "preact/hooks";
import { describe, expect, it } from "vitest";

import { renderIn } from "../test/render";
import { ActionBadge } from "./ActionBadge";
import { DataTable, type DataColumn } from "./DataTable";
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

  describe("DataTable", () => {
    type Fruit = { id: string; name: string; count: number; exotic: boolean };
    const FRUITS: Fruit[] = [
      { id: "a", name: "Apple", count: 3, exotic: false },
      { id: "k", name: "Kiwi", count: 12, exotic: true },
      { id: "m", name: "Mango", count: 7, exotic: true },
    ];
    const COLUMNS: DataColumn<Fruit>[] = [
      { header: "Rank", class: "num", cell: (_, i) => i + 1 },
      {
        header: "Name",
        class: (f) => (f.exotic ? "exotic" : undefined),
        title: (f) => `id ${f.id}`,
        cell: (f) => <b>{f.name}</b>,
      },
      { header: "Count", align: "end", class: "num", cell: (f) => f.count },
    ];
    const cells = (row: Element) => [...row.querySelectorAll("td")].map((td) => td.textContent);

    it("draws the headers, the cells and the row test ids", () => {
      const { container } = renderIn(
        <DataTable columns={COLUMNS} rows={FRUITS} rowKey={(f) => f.id} rowTestId={(f) => `fruit-${f.id}`} />,
      );
      const wrap = container.firstElementChild!;
      expect(wrap.className).toBe("table-wrap");
      expect(wrap.querySelector("table")!.className).toBe("table");
      const ths = [...container.querySelectorAll("thead th")];
      expect(ths.map((th) => th.textContent)).toEqual(["Rank", "Name", "Count"]);
      expect(ths.map((th) => th.getAttribute("scope"))).toEqual(["col", "col", "col"]);
      expect(ths.map((th) => th.getAttribute("class"))).toEqual([null, null, "end"]);

      const rows = [...container.querySelectorAll("tbody tr")];
      expect(rows.map((r) => r.getAttribute("data-testid"))).toEqual(["fruit-a", "fruit-k", "fruit-m"]);
      expect(rows.map(cells)).toEqual([
        ["1", "Apple", "3"],
        ["2", "Kiwi", "12"],
        ["3", "Mango", "7"],
      ]);
      const [rank, name, count] = [...rows[1]!.querySelectorAll("td")];
      expect(rank!.className).toBe("num");
      expect(name!.className).toBe("exotic");
      expect(name!.getAttribute("title")).toBe("id k");
      expect(name!.querySelector("b")!.textContent).toBe("Kiwi");
      expect(count!.className).toBe("end num");
      expect(rows[0]!.querySelectorAll("td")[1]!.hasAttribute("class")).toBe(false);
      // Not selectable: the rows are not in the tab order.
      expect(rows[0]!.hasAttribute("tabindex")).toBe(false);
      expect(rows[0]!.hasAttribute("aria-selected")).toBe(false);
    });

    it("has a compact and a scrolling variant", () => {
      const { container } = renderIn(
        <DataTable columns={COLUMNS} rows={FRUITS} rowKey={(f) => f.id} compact scroll />,
      );
      expect(container.firstElementChild!.className).toBe("table-wrap scroll");
      expect(container.querySelector("table")!.className).toBe("table compact");
      expect(container.querySelector("tbody tr")!.hasAttribute("data-testid")).toBe(false);
    });

    it("says when there is nothing, with or without the headers", () => {
      const { container, rerender } = renderIn(
        <DataTable columns={COLUMNS} rows={[]} rowKey={(f) => f.id} empty="Nothing here" />,
      );
      expect(container.innerHTML).toBe('<p class="muted">Nothing here</p>');
      rerender(
        <DataTable columns={COLUMNS} rows={[]} rowKey={(f) => f.id} empty="Nothing here" emptyClass="muted small" headerWhenEmpty />,
      );
      expect(container.querySelector("p")!.outerHTML).toBe('<p class="muted small">Nothing here</p>');
      expect(container.querySelectorAll("thead th")).toHaveLength(3);
      expect(container.querySelectorAll("tbody tr")).toHaveLength(0);
      rerender(<DataTable columns={COLUMNS} rows={FRUITS} rowKey={(f) => f.id} empty="Nothing here" headerWhenEmpty />);
      expect(container.querySelector("p")).toBeNull();
      expect(container.querySelectorAll("tbody tr")).toHaveLength(3);
    });

    it("selects a row by click, Enter or Space, and moves with the arrows", () => {
      const picked: string[] = [];
      function T() {
        const [sel, setSel] = useState<string | null>(null);
        return (
          <DataTable
            columns={COLUMNS}
            rows={FRUITS}
            rowKey={(f) => f.id}
            rowTestId={() => "fruit"}
            onSelect={(f, i) => {
              picked.push(`${f.id}${i}`);
              setSel(f.id);
            }}
            selectedKey={sel}
          />
        );
      }
      const { container } = renderIn(<T />);
      expect(container.querySelector("table")!.className).toBe("table selectable");
      const rows = () => screen.getAllByTestId("fruit");
      const state = () => rows().map((r) => `${r.getAttribute("aria-selected")}/${r.className}`);
      expect(rows().map((r) => r.tabIndex)).toEqual([0, 0, 0]);
      expect(state()).toEqual(["false/", "false/", "false/"]);

      fireEvent.click(rows()[1]!);
      expect(picked).toEqual(["k1"]);
      expect(state()).toEqual(["false/", "true/selected", "false/"]);

      rows()[1]!.focus();
      fireEvent.keyDown(rows()[1]!, { key: "ArrowDown" });
      expect(document.activeElement).toBe(rows()[2]);
      fireEvent.keyDown(rows()[2]!, { key: "ArrowDown" }); // stays on the last row
      expect(document.activeElement).toBe(rows()[2]);
      fireEvent.keyDown(rows()[2]!, { key: "Enter" });
      expect(picked).toEqual(["k1", "m2"]);
      expect(state()).toEqual(["false/", "false/", "true/selected"]);

      fireEvent.keyDown(rows()[2]!, { key: "ArrowUp" });
      fireEvent.keyDown(rows()[1]!, { key: "ArrowUp" });
      fireEvent.keyDown(rows()[0]!, { key: "ArrowUp" }); // stays on the first row
      expect(document.activeElement).toBe(rows()[0]);
      const space = fireEvent.keyDown(rows()[0]!, { key: " " });
      expect(space).toBe(false); // the page does not scroll
      expect(picked).toEqual(["k1", "m2", "a0"]);
      expect(state()).toEqual(["true/selected", "false/", "false/"]);

      fireEvent.keyDown(rows()[0]!, { key: "x" });
      expect(picked).toHaveLength(3);
    });
  });
});
