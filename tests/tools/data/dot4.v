// Test core for the P&R tests: rtl's a2q_top interface around one tiny layer, a dot product of
// four unsigned 4-bit inputs with constant weights (3, -2, 5, -7), accumulated over two beats
// (SF=2) in a ${ACC_BITS}-bit accumulator. The tests substitute ${ACC_MSB} (string.Template).
module a2q_top (
  input  wire ap_clk,
  input  wire ap_rst_n,
  input  wire [15:0] s_axis_tdata,
  input  wire s_axis_tvalid,
  output wire s_axis_tready,
  output wire [${ACC_MSB}:0] m_axis_tdata,
  output wire m_axis_tvalid,
  input  wire m_axis_tready
);
  localparam W = ${ACC_MSB} + 1;
  wire signed [W-1:0] x0 = $signed({1'b0, s_axis_tdata[3:0]});
  wire signed [W-1:0] x1 = $signed({1'b0, s_axis_tdata[7:4]});
  wire signed [W-1:0] x2 = $signed({1'b0, s_axis_tdata[11:8]});
  wire signed [W-1:0] x3 = $signed({1'b0, s_axis_tdata[15:12]});
  wire signed [W-1:0] dot = 3 * x0 - 2 * x1 + 5 * x2 - 7 * x3;
  reg signed [W-1:0] acc, out;
  reg half, full;
  wire take = s_axis_tvalid && s_axis_tready;
  assign s_axis_tready = !full || m_axis_tready;
  assign m_axis_tdata = out;
  assign m_axis_tvalid = full;
  always @(posedge ap_clk) begin
    if (!ap_rst_n) begin
      acc <= 0; out <= 0; half <= 1'b0; full <= 1'b0;
    end else begin
      if (full && m_axis_tready) full <= 1'b0;
      if (take) begin
        if (half) begin
          out <= acc + dot; full <= 1'b1; half <= 1'b0;
        end else begin
          acc <= dot; half <= 1'b1;
        end
      end
    end
  end
endmodule
